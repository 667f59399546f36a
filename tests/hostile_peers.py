"""Badly behaved peers for the fault and bad-input tests (stdlib only; runs in the lab's images).

    python3 hostile_peers.py corpus HOST CASES_JSON      run bad-input cases, each followed by a
                                                         well-formed request; print JSON results
    python3 hostile_peers.py slow-reader HOST PORT HOLD_S   send until the server stops taking
                                                         bytes, then never read; print JSON
    python3 hostile_peers.py flood HOST PORT N HOLD_S    open N connections at once, report what
                                                         each got in its first second, hold, close
    python3 hostile_peers.py hold-frames HOST PORT N BYTES HOLD_S   N connections each start a
                                                         frame and send BYTES of its content;
                                                         hold; report what the server said
    python3 hostile_peers.py udp-from HOST PORT SRC_PORT N   N datagrams from SRC_PORT; replies
    python3 hostile_peers.py trickle HOST PORT EVERY_S MAX_S   a byte every EVERY_S until closed
    python3 hostile_peers.py pipeline HOST PORT N EVERY_S   N framed requests, each sent in two
                                                         halves EVERY_S apart; replies read
    python3 hostile_peers.py attack KIND HOST PORT SECONDS [N]   one of ATTACKS for SECONDS, on
                                                         N connections at once where it has any
    python3 hostile_peers.py watch HOST SECONDS          a fresh app request and a fresh echo
                                                         every 0.2 s: the worst wait, and failures

Each case in CASES_JSON: {"name", "port", "udp": bool, "hex": payload (or "parts": [[hex, times],
...] for a large one), "half_close": bool,
"rst": bool (close with a reset right after sending), "byte_delay_s": float (send one byte at a
time)}. Every socket has a timeout; every loop is bounded.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
import time
from typing import Any

from lab import registry  # the lab's images carry the `lab` package (PYTHONPATH=/app)
from lab.greeting import parse_greeting

TIMEOUT_S = 10.0
GOOD_SEARCH = json.dumps({"action": "search", "value": "ring"}).encode()


def frame(content: bytes) -> bytes:
    header = json.dumps(
        {
            "byteorder": "big",
            "content-type": "text/json",
            "content-encoding": "utf-8",
            "content-length": len(content),
        }
    ).encode()
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


def payload_of(case: dict) -> bytes:
    """``hex``, or ``parts``: [[hex, times], ...] (a large repetitive payload, kept short
    enough for a command line)."""
    if "parts" in case:
        return b"".join(bytes.fromhex(piece) * times for piece, times in case["parts"])
    return bytes.fromhex(case["hex"])


def run_case(host: str, case: dict) -> dict:
    payload = payload_of(case)
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
                    sock.sendall(payload[i : i + 1])
                    try:
                        first = sock.recv(65536)
                    except TimeoutError:
                        continue
                    rest, end = read_until_closed(sock)
                    data = first + rest
                    return {
                        "received_hex": data.hex(),
                        "sent_bytes": i + 1,
                        "received_text": data.decode("utf-8", "replace"),
                        "end": end if first else "closed",
                        "elapsed_s": round(time.monotonic() - started, 3),
                    }
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
    return {
        "received_hex": data.hex(),
        "received_text": data.decode("utf-8", "replace"),
        "end": end,
        "elapsed_s": round(time.monotonic() - started, 3),
    }


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
            if port == registry.default_port("app"):
                sock.sendall(frame(GOOD_SEARCH))
                sock.shutdown(socket.SHUT_WR)
                data, _ = read_until_closed(sock)
                return b"Misty Mountains" in data
            if port == registry.default_port("greeting"):
                line = read_until_closed(sock)[0].decode("utf-8", "replace")
                return parse_greeting(line) is not None
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
    print(json.dumps({"stalled_after_bytes": sent, "local": f"{local[0]}:{local[1]}"}), flush=True)
    time.sleep(hold_s)
    sock.close()
    return {"stalled_after_bytes": sent}


def flood(
    host: str,
    port: int,
    count: int,
    hold_s: float,
    sources: tuple[str, ...] = ("",),
) -> dict:
    """``count`` connections from each of ``sources`` (local addresses; "" for any)."""
    socks, outcomes = [], {"busy": 0, "held": 0, "failed": 0}
    for source in sources:
        for _ in range(count):
            try:
                socks.append(
                    socket.create_connection(
                        (host, port), timeout=TIMEOUT_S, source_address=(source, 0)
                    )
                )
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


def _frame_prefix(content_length: int) -> bytes:
    header = json.dumps(
        {
            "byteorder": "big",
            "content-type": "x",
            "content-encoding": "binary",
            "content-length": content_length,
        }
    ).encode()
    return struct.pack(">H", len(header)) + header


def hold_frames(host: str, port: int, count: int, size: int, hold_s: float) -> dict:
    """Many connections each holding an unfinished frame: the server's buffers fill up."""
    socks: list[socket.socket] = []
    outcome: dict[str, Any] = {"opened": 0, "closed_by_server": 0, "replies_hex": []}
    started = time.monotonic()
    for _ in range(count):
        try:
            sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
            sock.sendall(_frame_prefix(size + 1) + b"\0" * size)  # one byte short
        except OSError:
            continue
        socks.append(sock)
        outcome["opened"] += 1
    outcome["send_s"] = round(time.monotonic() - started, 3)
    time.sleep(hold_s)
    for sock in socks:
        sock.setblocking(False)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            continue  # still open: the server holds its frame
        except OSError:
            data = b""
        outcome["closed_by_server"] += 1
        if data:
            outcome["replies_hex"].append(data.hex())
    for sock in socks:
        sock.close()
    return outcome


def udp_from(host: str, port: int, src_port: int, count: int) -> dict:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind(("", src_port))
        sock.settimeout(1.0)
        started = time.monotonic()
        for i in range(count):
            sock.sendto(b"%d" % i, (host, port))
        replies = 0
        try:
            while True:
                sock.recv(64)
                replies += 1
        except TimeoutError:
            pass
        return {
            "sent": count,
            "replies": replies,
            "elapsed_s": round(time.monotonic() - started - 1.0, 3),
        }


def trickle(host: str, port: int, every_s: float, max_s: float) -> dict:
    """A byte every ``every_s`` (reading the echo), until the server closes or ``max_s``."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sent = 0
        while time.monotonic() - started < max_s:
            try:
                sock.sendall(b".")
                sent += 1
                if not sock.recv(16):
                    break
            except OSError:
                break
            time.sleep(every_s)
        else:
            return {"closed_by_server": False, "sent": sent}
    return {
        "closed_by_server": True,
        "sent": sent,
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def pipeline(host: str, port: int, count: int, every_s: float) -> dict:
    """Correct pipelining that takes a while: each request in two halves ``every_s`` apart, the
    second half of one sent with the first half of the next (one ``sendall``), so that the
    server never sees the connection between frames until the last one: it is in an exchange
    throughout, as a peer that never pauses is."""
    request = frame(json.dumps({"action": "echo", "value": "x" * 64}).encode())
    started = time.monotonic()
    received, pending = b"", b""
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        for _ in range(count):
            sock.sendall(pending + request[:40])
            time.sleep(every_s)
            pending = request[40:]
            sock.setblocking(False)
            try:
                while chunk := sock.recv(65536):
                    received += chunk
            except BlockingIOError:
                pass
            sock.setblocking(True)
        sock.sendall(pending)
        sock.shutdown(socket.SHUT_WR)
        rest, end = read_until_closed(sock)
    return {
        "received_hex": (received + rest).hex(),
        "end": end,
        "elapsed_s": round(time.monotonic() - started, 3),
    }


# -- attacks that each once found a cost nothing accounted for (bounded by construction) -----
def _content_frame(content: bytes, content_type: str = "text/json") -> bytes:
    header = json.dumps(
        {
            "byteorder": "big",
            "content-type": content_type,
            "content-encoding": "utf-8",
            "content-length": len(content),
        }
    ).encode()
    return struct.pack(">H", len(header)) + header + content


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _drain(sock: socket.socket, until: float) -> int:
    """Read until the server closes or ``until``; the bytes read."""
    got = 0
    try:
        while time.monotonic() < until:
            sock.settimeout(max(0.05, min(TIMEOUT_S, until - time.monotonic())))
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
    except OSError:
        pass
    return got


def _each_connection(host: str, port: int, seconds: float, n: int, one: object) -> dict:
    """``one(sock, until)`` on N connections at a time, again and again, for ``seconds``."""
    until = time.monotonic() + seconds
    counts = {"connections": 0, "failed": 0}
    lock = threading.Lock()

    def worker() -> None:
        while time.monotonic() < until:
            try:
                sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
            except OSError:
                with lock:
                    counts["failed"] += 1
                time.sleep(0.05)
                continue
            with lock:
                counts["connections"] += 1
            try:
                one(sock, until)  # type: ignore[operator]
            except OSError:
                pass
            finally:
                sock.close()

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 2 * TIMEOUT_S)
    return counts


ESCAPED_HEADER = b'{"a": "' + b'\\"' * 32_000  # an unterminated string of escaped quotes
ESCAPED_HEADER_FRAME = struct.pack(">H", len(ESCAPED_HEADER)) + ESCAPED_HEADER
COSTLY = _content_frame(
    b'{"action": "echo", "value": [' + b"1.7976931348623157e308," * 22_000 + b"1]}"
)
NOT_JSON_512K = _content_frame(b"\xff" * (512 << 10))


def _escaped_quotes(sock: socket.socket, until: float) -> None:
    sock.sendall(ESCAPED_HEADER_FRAME)
    _drain(sock, until)


def _reset_mid_frame(sock: socket.socket, until: float) -> None:
    sock.sendall(_frame_prefix(512 << 10) + b"\0" * (500 << 10))
    time.sleep(0.1)
    _reset(sock)


def _not_json(sock: socket.socket, until: float) -> None:
    sock.sendall(NOT_JSON_512K)
    _drain(sock, until)


def _send_reading(sock: socket.socket, until: float, data: bytes) -> None:
    """Send ``data`` again and again until ``until``, reading every reply meanwhile."""
    reader = threading.Thread(target=_drain, args=(sock, until + 1))
    reader.start()
    try:
        while time.monotonic() < until:
            sock.sendall(data)
    finally:
        sock.shutdown(socket.SHUT_WR)
        reader.join(TIMEOUT_S + 2)


def _costly(sock: socket.socket, until: float) -> None:
    _send_reading(sock, until, COSTLY)


def _pipeline_flood(sock: socket.socket, until: float) -> None:
    """Small valid requests as fast as the server takes them, every reply read."""
    _send_reading(
        sock, until, frame(json.dumps({"action": "reverse", "value": "abc"}).encode()) * 256
    )


def _accept_storm(sock: socket.socket, until: float) -> None:
    _reset(sock)  # connect, and go at once


ATTACKS = {
    "escaped-quotes": _escaped_quotes,
    "reset-mid-frame": _reset_mid_frame,
    "not-json": _not_json,
    "costly": _costly,
    "pipeline-flood": _pipeline_flood,
    "accept-storm": _accept_storm,
}


def udp_ping_pong(host: str, port: int, my_port: int, seconds: float) -> dict:
    """Be another echo service on ``my_port``: send the server one datagram from it, as a forger
    would, then echo back whatever comes. How many rounds did the server play?"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("", my_port))
        sock.settimeout(1.0)
        sock.sendto(b"ping-pong", (host, port))
        rounds, until = 0, time.monotonic() + seconds
        try:
            while time.monotonic() < until:
                data, peer = sock.recvfrom(2048)
                rounds += 1
                sock.sendto(data, peer)
        except TimeoutError:
            pass
    return {"rounds": rounds}


def watch(
    host: str,
    seconds: float,
    app_port: int = registry.default_port("app"),
    echo_port: int = registry.default_port("tcp-echo"),
) -> dict:
    """A bystander: a fresh app request and a fresh echo every 0.2 s; the worst wait for each."""
    until = time.monotonic() + seconds
    worst = {"app": 0.0, "echo": 0.0}
    failed, done = [], 0
    request = frame(json.dumps({"action": "reverse", "value": "bystander"}).encode())
    while time.monotonic() < until:
        for kind, port, payload, want in (
            ("app", app_port, request, b"rednatsyb"),
            ("echo", echo_port, b"bystander", b"bystander"),
        ):
            started = time.monotonic()
            try:
                with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
                    sock.sendall(payload)
                    sock.shutdown(socket.SHUT_WR)
                    data, _ = read_until_closed(sock)
                ok = want in data
            except OSError as exc:
                ok, data = False, str(exc).encode()
            worst[kind] = max(worst[kind], time.monotonic() - started)
            done += 1
            if not ok:
                failed.append(f"{kind}: {data[:200]!r}")
        time.sleep(0.2)
    return {
        "requests": done,
        "worst_app_s": round(worst["app"], 3),
        "worst_echo_s": round(worst["echo"], 3),
        "failed": failed[:10],
    }


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "corpus":
        print(json.dumps(corpus(args[0], json.loads(args[1]))))
    elif mode == "slow-reader":
        slow_reader(args[0], int(args[1]), float(args[2]))
    elif mode == "flood":
        flood(args[0], int(args[1]), int(args[2]), float(args[3]))
    elif mode == "hold-frames":
        print(
            json.dumps(
                hold_frames(args[0], int(args[1]), int(args[2]), int(args[3]), float(args[4]))
            )
        )
    elif mode == "udp-from":
        print(json.dumps(udp_from(args[0], int(args[1]), int(args[2]), int(args[3]))))
    elif mode == "trickle":
        print(json.dumps(trickle(args[0], int(args[1]), float(args[2]), float(args[3]))))
    elif mode == "pipeline":
        print(json.dumps(pipeline(args[0], int(args[1]), int(args[2]), float(args[3]))))
    elif mode == "attack":
        kind, host, port, seconds = args[0], args[1], int(args[2]), float(args[3])
        print(
            json.dumps(
                _each_connection(
                    host, port, seconds, int(args[4]) if args[4:] else 1, ATTACKS[kind]
                )
            )
        )
    elif mode == "flood-from":  # HOST PORT N_PER_SOURCE HOLD_S SOURCE,SOURCE,...
        wanted = args[4].split(",")
        for _ in range(200):  # the addresses are being added from outside: wait for them
            with open("/proc/net/if_inet6") as table:
                have = {line.split()[0] for line in table}
            if all(socket.inet_pton(socket.AF_INET6, a).hex() in have for a in wanted):
                break
            time.sleep(0.1)
        flood(args[0], int(args[1]), int(args[2]), float(args[3]), tuple(wanted))
    elif mode == "udp-ping-pong":
        print(json.dumps(udp_ping_pong(args[0], int(args[1]), int(args[2]), float(args[3]))))
    elif mode == "watch":
        print(json.dumps(watch(args[0], float(args[1]))))
    else:
        sys.exit(__doc__)
