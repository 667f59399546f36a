"""Exercise 1 (docs/learn.md, stage 2): a server other hosts can reach.

This echo server works on your machine: run it, then
`python3 services/labtutorial/echo_client.py 127.0.0.1 65432 hello` in another terminal. From
another container nobody reaches it.

Your task: make clients on other hosts reach it, over IPv4 and over IPv6, on port 65432. Keep
everything else as it is. Grade it (across containers, about 20 s):

    make exercise N=1

The verdicts say what the kit's clients saw, with a hint for each failure.
"""

import signal
import socket

HOST, PORT = "127.0.0.1", 65432


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # PID 1 in a container
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, PORT))
        listener.listen()
        print(f"listening on {HOST}:{PORT}", flush=True)
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
