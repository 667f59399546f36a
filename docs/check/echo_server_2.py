"""Step 2: what the check's first verdicts asked for. Every address, IPv4 and IPv6; a client
after another, for ever; SIGTERM ends it. Still one client at a time: run the check again.

    make check-server PROGRAM=docs/check/echo_server_2.py
"""

import signal
import socket
import sys

PORT = 65432

# PID 1 in a container ignores SIGTERM unless it says what to do with it.
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

# "" and dualstack_ipv6: every address, IPv4 and IPv6, on one socket (SO_REUSEADDR set too).
with socket.create_server(("", PORT), family=socket.AF_INET6, dualstack_ipv6=True) as s:
    while True:
        conn, addr = s.accept()
        with conn:
            print(f"Connected by {addr}", flush=True)
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except ConnectionError:
                pass  # this client reset: the next one is served
