"""A classic mistake, made visible: restarting a server without SO_REUSEADDR.

    python3 reuse.py

It runs the experiment twice on your machine, on loopback (on a port the kernel picks), and
says what bind() answered:

- a server (without SO_REUSEADDR) serves a client and closes the connection first: the side
  that closes first keeps the connection in TIME_WAIT for a minute (60 s on Linux), so that
  late packets of the old connection cannot be taken for a new one. The server stops and is
  started again on the same port: bind() fails with EADDRINUSE, "Address already in use",
  although nothing is listening;
- the same server with SO_REUSEADDR set before bind() (in both runs of it, as it would be: it
  is the same program): it listens again at once.

That is why a server restarted by hand (or by a restart policy) needs SO_REUSEADDR, and why
socket.create_server sets it for you. Exit status 0 when both turn out as above.
"""

import socket
import sys


def listener(port: int, reuse: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.listen()
    return sock


def restart(reuse: bool) -> str:
    """A server serves one client, closes first, stops, and starts again on the same port (the
    same program both times: with SO_REUSEADDR or without). What bind() said."""
    first = listener(0, reuse)
    port = first.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        conn, _ = first.accept()
        conn.close()  # the server closes first: its end of the connection goes to TIME_WAIT
        client.recv(1)  # the server's FIN
    first.close()
    try:
        listener(port, reuse).close()
    except OSError as exc:
        return f"bind() failed: {exc}"
    return "listening again at once"


def main(argv: list[str]) -> int:
    without = restart(reuse=False)
    print(f"without SO_REUSEADDR, restarted after closing a connection first: {without}")
    with_it = restart(reuse=True)
    print(f"with SO_REUSEADDR, the same: {with_it}")
    return 0 if "Address already in use" in without and "again" in with_it else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
