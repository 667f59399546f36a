"""A solution to docs/exercises/4_framed_server.py (exercise 4): buffer, then parse what is whole.

Bytes go into a buffer as they arrive; a request is taken from its front only when all of it
is there (2 bytes, then the header's length, then content-length), and the loop takes as many as
are whole before it reads again.
"""

import json
import signal
import socket
import struct
import sys
import threading

PORT = 65433
TABLE = {"ring": "In the caves beneath the Misty Mountains.", "tcp": "A byte stream."}


def message(content: bytes, content_type: str, encoding: str) -> bytes:
    header = {
        "byteorder": sys.byteorder,
        "content-type": content_type,
        "content-encoding": encoding,
        "content-length": len(content),
    }
    header_bytes = json.dumps(header).encode("utf-8")
    return struct.pack(">H", len(header_bytes)) + header_bytes + content


def answer(header: dict, content: bytes) -> bytes:
    if header.get("content-type") == "text/json":
        request = json.loads(content.decode("utf-8"))
        if request.get("action") == "search":
            result = TABLE.get(request.get("value"), f"No match for {request.get('value')!r}.")
        else:
            result = f"Error: invalid action {request.get('action')!r}."
        reply = json.dumps({"result": result}).encode("utf-8")
        return message(reply, "text/json", "utf-8")
    return message(b"First 10 bytes of request: " + content[:10], "binary/custom", "binary")


def serve(conn: socket.socket) -> None:
    with conn:
        buffer = b""
        try:
            while data := conn.recv(65536):
                buffer += data
                while len(buffer) >= 2:  # every request that is whole, in order
                    (header_len,) = struct.unpack(">H", buffer[:2])
                    if len(buffer) < 2 + header_len:
                        break  # the header is not all here yet
                    header = json.loads(buffer[2 : 2 + header_len].decode("utf-8"))
                    end = 2 + header_len + int(header["content-length"])
                    if len(buffer) < end:
                        break  # the content is not all here yet
                    content, buffer = buffer[2 + header_len : end], buffer[end:]
                    conn.sendall(answer(header, content))
        except (OSError, ValueError, KeyError, struct.error) as exc:
            print(f"closing a connection: {exc!r}", flush=True)


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # PID 1 in a container
    listener = socket.create_server(("::", PORT), family=socket.AF_INET6, dualstack_ipv6=True)
    print(f"app server on port {PORT}", flush=True)
    with listener:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
