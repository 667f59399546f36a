"""A solution to docs/exercises/5_many_clients_server.py (exercise 5): one selectors loop.

A thread per client serves a second client while the first stays connected, but every thread
counts against the container's pids limit, and fifty clients at once pass it. One thread with
a selector serves them all: each socket is non-blocking, select() says which are ready, and a
socket is watched for writing only while it has an echo waiting (an idle socket is always
writable: watching it all the time spins a core). A client that sends without reading is read
no further once 1 MiB of its echo waits.
"""

import selectors
import signal
import socket

PORT = 65432
HOLD = 1 << 20  # stop reading a client once this much of its echo waits to be sent


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # PID 1 in a container
    listener = socket.create_server(("::", PORT), family=socket.AF_INET6, dualstack_ipv6=True)
    listener.setblocking(False)
    print(f"listening on port {PORT}", flush=True)
    waiting: dict[socket.socket, bytearray] = {}  # each client's echo not yet sent
    done: set[socket.socket] = set()  # clients that have closed their side
    with selectors.DefaultSelector() as sel, listener:
        sel.register(listener, selectors.EVENT_READ)
        while True:
            for key, mask in sel.select():
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    waiting[conn] = bytearray()
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                conn = key.fileobj  # type: ignore[assignment]
                try:
                    if mask & selectors.EVENT_READ:
                        if data := conn.recv(65536):
                            waiting[conn] += data
                        else:
                            done.add(conn)  # the client is done: send what is left, then close
                    if mask & selectors.EVENT_WRITE and waiting[conn]:
                        del waiting[conn][: conn.send(waiting[conn])]
                except OSError as exc:  # reset by the peer: this client only
                    print(f"a client: {exc}", flush=True)
                    waiting[conn].clear()
                    done.add(conn)
                if conn in done and not waiting[conn]:
                    sel.unregister(conn)
                    conn.close()
                    del waiting[conn]
                    done.discard(conn)
                    continue
                reading = conn not in done and len(waiting[conn]) < HOLD
                events = (selectors.EVENT_READ if reading else 0) | (
                    selectors.EVENT_WRITE if waiting[conn] else 0
                )
                sel.modify(conn, events)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
