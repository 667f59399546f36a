"""Mistake: no try around a client's recv(). The first client that resets takes the server down.

A selectors loop, as the tutorial's, with the write side done right: only the missing
exception handling is wrong."""

import selectors
import signal
import socket
import sys

sel = selectors.DefaultSelector()
pending: dict[socket.socket, bytes] = {}  # echo not yet sent, per client
finished: set[socket.socket] = set()  # clients that have shut down their side
HIGH_WATER = 65536  # stop reading a client that does not read its echo


def serve(conn: socket.socket, mask: int) -> None:
    if mask & selectors.EVENT_READ:
        data = conn.recv(65536)  # a reset raises here, and nothing catches it
        if data:
            pending[conn] += data
        else:
            finished.add(conn)
    if pending[conn]:
        try:
            sent = conn.send(pending[conn])
        except BlockingIOError:
            sent = 0  # its buffer is full: the rest waits for EVENT_WRITE
        pending[conn] = pending[conn][sent:]
    if conn in finished and not pending[conn]:
        sel.unregister(conn)
        conn.close()
        del pending[conn]
        finished.discard(conn)
        return
    reading = conn not in finished and len(pending[conn]) < HIGH_WATER
    sel.modify(
        conn,
        (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if pending[conn] else 0),
    )


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.create_server(("::", 65432), family=socket.AF_INET6, dualstack_ipv6=True)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    while True:
        for key, mask in sel.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                pending[conn] = b""
                sel.register(conn, selectors.EVENT_READ)
            else:
                serve(key.fileobj, mask)  # type: ignore[arg-type]


main()
