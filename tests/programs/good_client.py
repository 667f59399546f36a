"""A correct echo client: sendall, read until the server closes (or the whole echo is there),
a timeout, and a clear error."""

import socket
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
message = (sys.argv[2] if len(sys.argv) > 2 else "Hello, world").encode()
try:
    with socket.create_connection((host, 65432), timeout=5) as sock:
        sock.sendall(message)
        sock.shutdown(socket.SHUT_WR)  # done sending: the server sees b''
        reply = b""
        try:
            while len(reply) < len(message) and (chunk := sock.recv(65536)):
                reply += chunk
        except ConnectionResetError:
            pass  # a reset after the reply loses nothing we have
    print(reply.decode())
    sys.exit(0 if reply == message else 1)
except OSError as exc:
    print(f"client: {exc}", file=sys.stderr)
    sys.exit(1)
