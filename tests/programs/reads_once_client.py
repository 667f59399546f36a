"""Mistake: one recv(). The reply arrives in pieces over a real network; this prints the first.

Otherwise careful: a timeout, a clear error when the server is not there."""

import socket
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
message = sys.argv[2] if len(sys.argv) > 2 else "Hello, world"
try:
    with socket.create_connection((host, 65432), timeout=5) as sock:
        sock.sendall(message.encode())
        print(sock.recv(1024).decode())  # the whole reply? only what has arrived so far
except OSError as exc:
    print(f"client: {exc}", file=sys.stderr)
    sys.exit(1)
