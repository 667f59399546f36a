"""Step 4: a message protocol on a stream: Real Python's framed app client and server, as
teaching code.

A stream has no message boundaries (pieces.py), so the protocol makes its own: every message is

    struct.pack(">H", len(header)) + header + content

a 2-byte length (big-endian: network byte order), then that many bytes of JSON header (which
says how long the content is, and what it is), then the content. The reader reads exactly 2
bytes, then exactly the header's length, then exactly content-length: ``_recv_exactly`` is the
loop that a single recv() is not.

- the client sends ONE request -- ``search`` as text/json ``{"action", "value"}``, any other action
  as the bytes of action+value with content-type ``binary/custom-client-binary-type`` and
  content-encoding ``binary`` -- reads one reply, and closes;
- the server reads ONE request per connection, answers it and closes: search with a lookup table
  and ``No match for "<value>".``, ``Error: invalid action "<action>".`` for other text/json
  actions, ``b"First 10 bytes of request: " + request[:10]`` for binary requests.

The header is ``json.dumps({...}, ensure_ascii=False).encode("utf-8")`` with the keys in the
tutorial's order. Written from the tutorial's description, independently of ``lab.framing``: the
suite checks the lab's codec against this second implementation, not against itself.

    python3 framed.py client HOST PORT ACTION VALUE    prints one JSON line, the reply
    python3 framed.py server PORT CONNECTIONS          serves that many, then exits
"""

from __future__ import annotations

import json
import socket
import struct
import sys

TIMEOUT_S = 10.0
SERVE_FOR_AT_MOST_S = 120.0
TABLE = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
}


def make_message(content: bytes, content_type: str, content_encoding: str) -> bytes:
    header = {
        "byteorder": sys.byteorder,
        "content-type": content_type,
        "content-encoding": content_encoding,
        "content-length": len(content),
    }
    header_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(header_bytes)) + header_bytes + content


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"peer closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_message(sock: socket.socket) -> tuple[dict, bytes]:
    (header_len,) = struct.unpack(">H", _recv_exactly(sock, 2))
    header = json.loads(_recv_exactly(sock, header_len).decode("utf-8"))
    for key in ("byteorder", "content-length", "content-type", "content-encoding"):
        if key not in header:
            raise ValueError(f'Missing required header "{key}".')
    return header, _recv_exactly(sock, header["content-length"])


def request(host: str, port: int, action: str, value: str) -> dict:
    """One request, one reply, close: the tutorial client's whole life."""
    if action == "search":
        content = json.dumps({"action": action, "value": value}, ensure_ascii=False)
        message = make_message(content.encode("utf-8"), "text/json", "utf-8")
    else:
        message = make_message(
            (action + value).encode("utf-8"), "binary/custom-client-binary-type", "binary"
        )
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(message)
        header, body = read_message(sock)
    if header["content-type"] == "text/json":
        return {"header": header, "reply": json.loads(body.decode(header["content-encoding"]))}
    return {"header": header, "reply": body.decode("utf-8", "replace")}


def answer(header: dict, content: bytes) -> bytes:
    if header["content-type"] == "text/json":
        req = json.loads(content.decode(header["content-encoding"]))
        if req.get("action") == "search":
            query = req.get("value")
            result = TABLE.get(query) or f'No match for "{query}".'
        else:
            result = f'Error: invalid action "{req.get("action")}".'
        body = json.dumps({"result": result}, ensure_ascii=False).encode("utf-8")
        return make_message(body, "text/json", "utf-8")
    return make_message(
        b"First 10 bytes of request: " + content[:10], "binary/custom-server-binary-type", "binary"
    )


def serve(port: int, connections: int, ready: object = None) -> None:
    """Answer one request on each of ``connections`` connections, then return (bounded)."""
    with socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True) as srv:
        srv.settimeout(SERVE_FOR_AT_MOST_S)
        print(f"tutorial server listening on port {srv.getsockname()[1]}", flush=True)
        if ready is not None:
            ready(srv.getsockname()[1])  # type: ignore[operator]
        for answered in range(connections):
            try:
                conn, addr = srv.accept()
            except TimeoutError:  # bounded: a test that sent fewer requests ends it this way
                print(
                    f"tutorial server stopping: no connection for {SERVE_FOR_AT_MOST_S}s "
                    f"({answered} of {connections} answered)",
                    flush=True,
                )
                return
            with conn:
                conn.settimeout(TIMEOUT_S)
                header, content = read_message(conn)
                conn.sendall(answer(header, content))
            print(f"answered {header['content-type']} request from {addr[0]}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        print(json.dumps(request(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])))
    elif sys.argv[1:2] == ["server"]:
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(__doc__)
