"""Exercise 2 (docs/learn.md, stage 3): a client that survives a reply in pieces.

    python3 2_pieces_client.py HOST MESSAGE

It sends MESSAGE to the echo server on HOST, port 65432, and prints what came back. On your
machine it always gets the whole echo. Across a network, the reply can arrive in pieces, and
this client prints only the first.

Your task: print the whole reply, however it arrives, and exit with status 0 only when all of
it came back (1, with one line saying why, otherwise). Grade it against the kit's proving
servers, which send their replies in small pieces with pauses (about 20 s):

    make exercise N=2
"""

import socket
import sys

PORT = 65432


def main(host: str, message: str) -> int:
    data = message.encode()
    with socket.create_connection((host, PORT), timeout=10) as sock:
        sock.sendall(data)
        reply = sock.recv(65536)  # one recv: whatever has arrived so far
    print(reply.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
