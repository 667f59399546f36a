"""Step 1: the echo server every sockets tutorial starts with, as it is taught on one machine.

It binds to 127.0.0.1, serves one client, and exits. Run the check on it:

    make check-server PROGRAM=docs/check/echo_server_1.py
"""

import socket

HOST = "127.0.0.1"  # the loopback interface: only this host can connect
PORT = 65432

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind((HOST, PORT))
    s.listen()
    conn, addr = s.accept()
    with conn:
        print(f"Connected by {addr}")
        while True:
            data = conn.recv(1024)
            if not data:
                break
            conn.sendall(data)
