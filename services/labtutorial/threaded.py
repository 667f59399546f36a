"""Step 2: a thread per client. Clients no longer wait for each other.

    python3 threaded.py HOST PORT

The main thread only accepts; each connection gets a thread running the blocking echo loop of
step 1. A slow client now holds only its own thread. Every thread costs a stack and a task in
the kernel, and the container's pids limit caps them: past it, a new client is turned away.
"""

import os
import signal
import socket
import sys
import threading

# In the lab's container only the health check connects over loopback, every second:
# compose.yaml sets LAB_QUIET_LOOPBACK=1 to leave it out of the story. Run by hand, your own
# clients on loopback are shown like any other.
QUIET = (
    ("127.0.0.1", "::1", "::ffff:127.0.0.1")
    if os.environ.get("LAB_QUIET_LOOPBACK", "").lower() in ("1", "true", "yes", "on")
    else ()
)


def echo(conn: socket.socket, addr: tuple) -> None:
    with conn:
        try:
            while data := conn.recv(1024):
                conn.sendall(data)
        except OSError as exc:
            print(f"threaded: {addr[0]} port {addr[1]}: {exc}", flush=True)
        if addr[0] not in QUIET:
            print(f"threaded: {addr[0]} port {addr[1]} done", flush=True)


def serve(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        listener.bind((host, port))
        listener.listen()
        print(f"threaded: listening on [{host}]:{port}, a thread per client", flush=True)
        while True:
            conn, addr = listener.accept()
            if addr[0] not in QUIET:
                print(
                    f"threaded: connected by {addr[0]} port {addr[1]} "
                    f"({threading.active_count()} threads)",
                    flush=True,
                )
            try:
                # daemon: the process may exit (SIGTERM) with clients still connected
                threading.Thread(target=echo, args=(conn, addr), daemon=True).start()
            except RuntimeError as exc:  # "can't start new thread": the pids limit
                print(f"threaded: turning {addr[0]} port {addr[1]} away: {exc}", flush=True)
                conn.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # PID 1: SIGTERM acts like Ctrl-C
    host, port = argv
    try:
        serve(host, int(port))
    except KeyboardInterrupt:
        print("threaded: interrupted, closing (client threads end with the process)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
