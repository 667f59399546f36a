"""Step 3: the tutorial's multi-connection echo server, one thread and a selectors loop.

    python3 multiconn.py HOST PORT

Non-blocking sockets registered with a selector; select() says which are ready, and the loop
serves each in turn. As in the tutorial, every connection is registered for reading AND
writing, all the time: an idle socket is always writable, so select() returns at once, again
and again, and the loop spins a CPU core while clients sit idle. And it reads whatever arrives,
so a client that sends but never reads makes ``outb`` grow without bound.
"""

import os
import selectors
import signal
import socket
import sys
import types
import typing

# In the lab's container only the health check connects over loopback, every second:
# compose.yaml sets LAB_QUIET_LOOPBACK=1 to leave it out of the story. Run by hand, your own
# clients on loopback are shown like any other.
QUIET = (
    ("127.0.0.1", "::1", "::ffff:127.0.0.1")
    if os.environ.get("LAB_QUIET_LOOPBACK", "").lower() in ("1", "true", "yes", "on")
    else ()
)
sel = selectors.DefaultSelector()


def accept_wrapper(sock: socket.socket) -> None:
    conn, addr = sock.accept()  # ready to read, so this does not block
    if addr[0] not in QUIET:
        print(f"multiconn: accepted connection from {addr[0]} port {addr[1]}", flush=True)
    conn.setblocking(False)
    data = types.SimpleNamespace(addr=addr, outb=b"", closing=False)
    sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, data=data)


def service_connection(key: selectors.SelectorKey, mask: int) -> None:
    sock, data = typing.cast(socket.socket, key.fileobj), key.data  # what we registered
    try:
        if mask & selectors.EVENT_READ and not data.closing:
            recv_data = sock.recv(1024)
            if recv_data:
                data.outb += recv_data
            else:  # the tutorial closes right here, losing any echo not yet sent
                data.closing = True
        if mask & selectors.EVENT_WRITE and data.outb:
            sent = sock.send(data.outb)
            data.outb = data.outb[sent:]
    except OSError as exc:  # reset by the peer: this client only
        print(f"multiconn: {data.addr[0]} port {data.addr[1]}: {exc}", flush=True)
        data.closing, data.outb = True, b""
    if data.closing and not data.outb:
        if data.addr[0] not in QUIET:
            print(
                f"multiconn: closing connection to {data.addr[0]} port {data.addr[1]}", flush=True
            )
        sel.unregister(sock)
        sock.close()


def serve(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
    lsock.bind((host, port))
    lsock.listen()
    print(f"multiconn: listening on [{host}]:{port}, one thread, a selectors loop", flush=True)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, data=None)
    while True:
        for key, mask in sel.select(timeout=None):
            if key.data is None:
                accept_wrapper(typing.cast(socket.socket, key.fileobj))
            else:
                service_connection(key, mask)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # PID 1: SIGTERM acts like Ctrl-C
    host, port = argv
    try:
        serve(host, int(port))
    except KeyboardInterrupt:
        print("multiconn: interrupted, closing", flush=True)
    finally:
        sel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
