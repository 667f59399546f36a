"""Badly behaved peers for the fault and bad-input tests (stdlib only; runs in the lab's images).

    python3 hostile_peers.py corpus HOST CASES_JSON      run bad-input cases, each followed by a
                                                         well-formed request; print JSON results
    python3 hostile_peers.py slow-reader HOST PORT HOLD_S   send until the server stops taking
                                                         bytes, then never read; print JSON
    python3 hostile_peers.py flood HOST PORT N HOLD_S    open N connections at once, report what
                                                         each got in its first second, hold, close

Each case in CASES_JSON: {"name", "port", "udp": bool, "hex": payload, "half_close": bool,
"rst": bool (close with a reset right after sending), "byte_delay_s": float (send one byte at a
time)}. Every socket has a timeout; every loop is bounded.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time

TIMEOUT_S = 10.0
GOOD_SEARCH = json.dumps({"action": "search", "value": "ring"}).encode()


def frame(content: bytes) -> bytes:
    header = json.dumps({"byteorder": "big", "content-type": "text/json",
                         "content-encoding": "utf-8", "content-length": len(content)}).encode()
    return struct.pack(">H", len(header)) + header + content


def read_until_closed(sock: socket.socket, timeout_s: float = TIMEOUT_S) -> tuple[bytes, str]:
    sock.settimeout(timeout_s)
    data = b""
    try:
        while len(data) < 1 << 20 and (chunk := sock.recv(65536)):
            data += chunk
    except TimeoutError:
        return data, "open"
    except ConnectionResetError:
        return data, "reset"
    return data, "closed"


def run_case(host: str, case: dict) -> dict:
    payload = bytes.fromhex(case["hex"])
    started = time.monotonic()
    if case.get("udp"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            sock.sendto(payload, (host, case["port"]))
            try:
                reply = sock.recv(70000).hex()
            except TimeoutError:
                reply = None
        return {"udp_reply_hex": reply}
    sock = socket.create_connection((host, case["port"]), timeout=TIMEOUT_S)
    with sock:
        try:
            if case.get("byte_delay_s"):  # a slow sender: watch for the server's answer meanwhile
                sock.settimeout(case["byte_delay_s"])
                for i in range(len(payload)):
                    sock.sendall(payload[i:i + 1])
                    try:
                        first = sock.recv(65536)
                    except TimeoutError:
                        continue
                    rest, end = read_until_closed(sock)
                    data = first + rest
                    return {"received_hex": data.hex(), "sent_bytes": i + 1,
                            "received_text": data.decode("utf-8", "replace"),
                            "end": end if first else "closed",
                            "elapsed_s": round(time.monotonic() - started, 3)}
            else:
                sock.sendall(payload)
            if case.get("half_close"):
                sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            return {"send_error": type(exc).__name__, "elapsed_s": time.monotonic() - started}
        if case.get("rst"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return {"reset_sent": True}
        data, end = read_until_closed(sock, case.get("read_timeout_s", TIMEOUT_S))
    return {"received_hex": data.hex(), "received_text": data.decode("utf-8", "replace"),
            "end": end, "elapsed_s": round(time.monotonic() - started, 3)}


def good_request(host: str, port: int, udp: bool) -> bool:
    """Is the listener still serving? One well-formed exchange of its kind."""
    try:
        if udp:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(2.0)
                token = os.urandom(16)
                sock.sendto(token, (host, port))
                return sock.recv(64) == token
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
            if port == 65433:
                sock.sendall(frame(GOOD_SEARCH))
                sock.shutdown(socket.SHUT_WR)
                data, _ = read_until_closed(sock)
                return b"Misty Mountains" in data
            if port == 65434:
                return read_until_closed(sock)[0].startswith(b"Hello from ")
            token = os.urandom(32)
            sock.sendall(token)
            sock.shutdown(socket.SHUT_WR)
            return read_until_closed(sock)[0] == token
    except OSError:
        return False


def corpus(host: str, cases: list[dict]) -> list[dict]:
    results = []
    for case in cases:
        outcome = run_case(host, case)
        outcome["name"] = case["name"]
        outcome["served_after"] = good_request(host, case["port"], bool(case.get("udp")))
        results.append(outcome)
    return results


def slow_reader(host: str, port: int, hold_s: float) -> dict:
    """Send echo data without ever reading, until the server stops taking it; then hold."""
    sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
    sock.setblocking(False)
    sent, stalled_since = 0, None
    chunk = os.urandom(65536)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 1.0:
                break  # the server has stopped reading from us: back-pressure holds
            time.sleep(0.02)
    local = sock.getsockname()
    print(json.dumps({"stalled_after_bytes": sent, "local": f"{local[0]}:{local[1]}"}),
          flush=True)
    time.sleep(hold_s)
    sock.close()
    return {"stalled_after_bytes": sent}


def flood(host: str, port: int, count: int, hold_s: float) -> dict:
    socks, outcomes = [], {"busy": 0, "held": 0, "failed": 0}
    for _ in range(count):
        try:
            socks.append(socket.create_connection((host, port), timeout=TIMEOUT_S))
        except OSError:
            outcomes["failed"] += 1
    time.sleep(1.0)  # let the server answer the ones over its cap
    for sock in socks:
        sock.setblocking(False)
        try:
            data = sock.recv(4096)
            outcomes["busy" if (b"busy" in data or not data) else "held"] += 1
        except BlockingIOError:
            outcomes["held"] += 1  # nothing to say: an open, idle connection
        except OSError:
            outcomes["busy"] += 1
    print(json.dumps(outcomes), flush=True)
    time.sleep(hold_s)
    for sock in socks:
        sock.close()
    return outcomes


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "corpus":
        print(json.dumps(corpus(args[0], json.loads(args[1]))))
    elif mode == "slow-reader":
        slow_reader(args[0], int(args[1]), float(args[2]))
    elif mode == "flood":
        flood(args[0], int(args[1]), int(args[2]), float(args[3]))
    else:
        sys.exit(__doc__)
