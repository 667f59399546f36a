"""Step 1c: a UDP echo server. No connections: no listen(), no accept(), one socket for every
client, and each datagram arrives whole or not at all.

    python3 udp_server.py HOST PORT [COUNT]

socket(SOCK_DGRAM) -> bind() -> recvfrom() -> sendto() back to whoever sent it, datagram by
datagram. recvfrom() returns the sender's address with the data, because nothing else says who
sent it; the reply goes to that address. It stops after COUNT datagrams if given, or after 60 s
without one (a program in a lab should end by itself).
"""

import socket
import sys

IDLE_S = 60
MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4: a datagram is never split for us


def serve(host: str, port: int, count: int | None = None) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        sock.bind((host, port))
        sock.settimeout(IDLE_S)
        print(f"udp_server: waiting for datagrams on [{host}]:{sock.getsockname()[1]}", flush=True)
        echoed = 0
        while count is None or echoed < count:
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                print(f"udp_server: nothing for {IDLE_S}s; stopping", flush=True)
                break
            # An IPv4 client seen through a dual-stack IPv6 socket: ::ffff:a.b.c.d
            print(f"udp_server: {len(data)} bytes from {addr[0]} port {addr[1]}", flush=True)
            sock.sendto(data, addr)
            echoed += 1
        return echoed


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    serve(argv[0], int(argv[1]), int(argv[2]) if len(argv) == 3 else None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
