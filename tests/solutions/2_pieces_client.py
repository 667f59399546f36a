"""A solution to docs/exercises/2_pieces_client.py (exercise 2): read until the server closes.

A TCP connection is a byte stream: one recv() returns what has arrived so far. The echo ends
when the server closes its side (recv() returns b""), after we have closed ours with
shutdown(SHUT_WR); a timeout or a reset before the whole echo is an error, said in one line.
"""

import socket
import sys

PORT = 65432


def main(host: str, message: str) -> int:
    data = message.encode()
    reply = b""
    try:
        with socket.create_connection((host, PORT), timeout=10) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # "that is all": the server sees b""
            while len(reply) < len(data):
                chunk = sock.recv(65536)
                if not chunk:  # the server closed
                    break
                reply += chunk
    except ConnectionResetError:
        pass  # a reset after the whole reply loses nothing: judged below
    except OSError as exc:
        print(f"error: {host} port {PORT}: {exc}", file=sys.stderr)
        return 1
    print(reply.decode(errors="replace"))
    if reply != data:
        print(f"error: {len(reply)} of {len(data)} bytes came back", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
