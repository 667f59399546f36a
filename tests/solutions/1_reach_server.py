"""A solution to docs/exercises/1_reach_server.py (exercise 1): bind to every address.

"127.0.0.1" is the loopback interface: only programs on the same host reach it. "::" is every
address, IPv6 and (with IPV6_V6ONLY off) IPv4 too; IPv4 clients then show as ::ffff:a.b.c.d.
"""

import signal
import socket

HOST, PORT = "::", 65432


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # PID 1 in a container
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 as well
        listener.bind((HOST, PORT))
        listener.listen()
        print(f"listening on [{HOST}]:{PORT}", flush=True)
        while True:
            conn, addr = listener.accept()
            with conn:
                print(f"connected by {addr[0]} port {addr[1]}", flush=True)
                try:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                except OSError as exc:
                    print(f"{addr[0]} port {addr[1]}: {exc}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
