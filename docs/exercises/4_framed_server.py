"""Exercise 4 (docs/learn.md, stage 5): read a framed request however it arrives.

An app server for Real Python's framing (docs/protocol.md): each message is a 2-byte big-endian
length, that many bytes of JSON header, then the header's content-length bytes of content. It
answers `search` requests (text/json) with a result, and binary requests with their first bytes;
a thread serves each connection, one request after another.

On your machine each request arrives in one recv(). Across a network it may not: a request can
be split anywhere (even inside the 2-byte length), and two requests can arrive in one recv().

Your task: answer every request, however its bytes arrive: in pieces, or two back to back.
Grade it (about 20 s):

    make exercise N=4
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
        try:
            while data := conn.recv(65536):  # one recv: one request, it assumes
                (header_len,) = struct.unpack(">H", data[:2])
                header = json.loads(data[2 : 2 + header_len].decode("utf-8"))
                start = 2 + header_len
                content = data[start : start + header["content-length"]]
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
