"""Mistake: the server's address written into the client. It works on one machine only."""

import socket
import sys

try:
    with socket.create_connection(("127.0.0.1", 65432), timeout=5) as sock:
        sock.sendall(b"Hello, world")
        print(sock.recv(1024).decode())
except OSError as exc:
    print(f"client: {exc}", file=sys.stderr)
    sys.exit(1)
