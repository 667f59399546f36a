"""A solution to docs/exercises/3_udp_server.py (exercise 3): every datagram, whole, to its sender.

recvfrom(bufsize) cuts a datagram longer than bufsize (the rest is lost), so the buffer is the
largest a datagram can be; and each datagram goes back to the address recvfrom() gave with it.
"""

import signal
import socket

PORT = 65432


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # PID 1 in a container
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        sock.bind(("::", PORT))
        print(f"udp echo on port {PORT}", flush=True)
        while True:
            data, sender = sock.recvfrom(65535)
            sock.sendto(data, sender)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
