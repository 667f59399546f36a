"""Exercise 3 (docs/learn.md, stage 4): a UDP echo server that answers everyone, whole.

This UDP echo server answers the first client that writes to it. Try it on your machine with
`python3 services/labtutorial/udp_client.py 127.0.0.1 65432 hello`: it works, for one client
and short messages.

Your task: send every datagram back, whole (up to the largest a UDP datagram can carry: 65,507
bytes of payload over IPv4), to whoever sent it, when many clients write at once. Grade it
(about 15 s):

    make exercise N=3
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
        client = None
        while True:
            data, sender = sock.recvfrom(1024)
            if client is None:
                client = sender  # the first one to write
            sock.sendto(data, client)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
