"""Mistake: send() instead of sendall(), on a non-blocking socket. What the kernel did not take
is lost: fine while the client reads fast, wrong as soon as it does not."""

import selectors
import signal
import socket
import sys

sel = selectors.DefaultSelector()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.create_server(("::", 65432), family=socket.AF_INET6, dualstack_ipv6=True)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                data = conn.recv(65536)
                if data:
                    conn.send(data)  # returns how much it took; the rest is dropped
                    continue
            except (BlockingIOError, ConnectionError):
                pass
            sel.unregister(conn)
            conn.close()


main()
