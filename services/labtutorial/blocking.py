"""Step 1: a blocking TCP echo server. It serves one client at a time.

    python3 blocking.py HOST PORT

socket() -> bind() -> listen() -> accept() -> recv()/sendall() until b"" -> close(), and then
the next client. While a client is connected, the next one waits in the listen backlog: its
connect() succeeds (the kernel completes the handshake), but nothing it sends is read until the
first client has gone. A client that never reads holds the server in sendall() for good.
"""

import os
import signal
import socket
import sys

# In the lab's container only the health check connects over loopback, every second:
# compose.yaml sets LAB_QUIET_LOOPBACK=1 to leave it out of the story. Run by hand, your own
# clients on loopback are shown like any other.
QUIET = (
    ("127.0.0.1", "::1", "::ffff:127.0.0.1")
    if os.environ.get("LAB_QUIET_LOOPBACK", "").lower() in ("1", "true", "yes", "on")
    else ()
)


def serve(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        listener.bind((host, port))
        listener.listen()
        print(f"blocking: listening on [{host}]:{port}, one client at a time", flush=True)
        while True:
            conn, addr = listener.accept()  # blocks until a client connects
            with conn:
                if addr[0] not in QUIET:
                    # An IPv4 client shows as ::ffff:a.b.c.d: the listening socket is IPv6 with
                    # IPV6_V6ONLY off, and the kernel maps IPv4 addresses into IPv6 for it.
                    print(f"blocking: connected by {addr[0]} port {addr[1]}", flush=True)
                try:
                    while data := conn.recv(1024):  # b"": the client closed its side
                        conn.sendall(data)
                except OSError as exc:  # reset by the peer: this client only
                    print(f"blocking: {addr[0]} port {addr[1]}: {exc}", flush=True)
                if addr[0] not in QUIET:
                    print(f"blocking: {addr[0]} port {addr[1]} done", flush=True)


def main(argv: list[str]) -> int:
    # In a container this program is PID 1, and PID 1 ignores SIGTERM unless it handles it:
    # make SIGTERM act like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    host, port = argv
    try:
        serve(host, int(port))
    except KeyboardInterrupt:
        print("blocking: interrupted, closing", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
