"""Step 1c: a UDP echo client. No connect() needed, no shutdown(): send a datagram, wait for one
back, and since UDP does not resend what the network loses, resend it ourselves.

    python3 udp_client.py HOST PORT MESSAGE

sendto() -> recvfrom() with a timeout; after TRIES timeouts, give up. A datagram from anyone
else is not our echo: recvfrom() says who sent it, and we check.
"""

import socket
import sys

TIMEOUT_S = 1.0
TRIES = 3


def echo(host: str, port: int, message: bytes) -> bytes | None:
    family, _, _, _, server = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT_S)
        for attempt in range(1, TRIES + 1):
            sock.sendto(message, server)
            try:
                while True:
                    data, addr = sock.recvfrom(65535)
                    if addr[:2] == server[:2]:
                        print(f"udp_client: echo from {addr[0]} port {addr[1]} (try {attempt})")
                        return data
            except TimeoutError:
                print(f"udp_client: no echo within {TIMEOUT_S}s (try {attempt} of {TRIES})")
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        got = echo(argv[0], int(argv[1]), argv[2].encode())
    except OSError as exc:  # an unknown name, say
        print(f"udp_client: {argv[0]} port {argv[1]}: {exc}", file=sys.stderr)
        return 1
    if got is None:
        print("udp_client: no echo: the datagrams, or their echoes, were lost", file=sys.stderr)
        return 1
    print(f"udp_client: {'the echo matches' if got == argv[2].encode() else 'the echo differs'}")
    return 0 if got == argv[2].encode() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
