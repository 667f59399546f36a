"""One function per listener: do one exchange, check it, return a result dict.

Results are plain dicts so the CLI can print them for people or as JSON for the tests.
A failed check raises a ``ClientError`` carrying what was observed.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import socket
import threading
import time

from lab.netinfo import endpoint, plain_ip

from .errors import DataMismatch, ProtocolError, TimedOut, Unreachable
from .transport import connect, endpoints, resolve, retrying

RECV_BYTES = 64 << 10
GREETING_MAX_BYTES = 4096


def _lost(what: str, exc: OSError, **details: object) -> Unreachable:
    return Unreachable(f"{what}: connection lost ({exc.strerror or exc})", **details)


def tcp_echo(host: str, port: int, family: int, size: int, deadline_s: float,
             timeout_s: float, payload: bytes | None = None) -> dict:
    """Send ``size`` random bytes, half-close, read the echo to EOF, compare length and digest.

    Sending runs in a thread while we read, so neither side's buffers can deadlock on a large
    payload.
    """
    payload = os.urandom(size) if payload is None else payload
    sock, attempts = connect(host, port, family, deadline_s, timeout_s)
    with sock:
        info = endpoints(sock)
        where = f"echo {endpoint((info['peer_ip'], info['peer_port']))}"
        started = time.perf_counter()
        send_error: list[OSError] = []

        def send() -> None:
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                send_error.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        digest, received = hashlib.sha256(), 0
        while True:
            try:
                chunk = sock.recv(RECV_BYTES)
            except TimeoutError:
                raise TimedOut(f"{where}: no data for {timeout_s:g}s after {received} of "
                               f"{size} bytes", **info) from None
            except OSError as exc:
                raise _lost(where, exc, received=received, **info) from None
            if not chunk:
                break
            digest.update(chunk)
            received += len(chunk)
        sender.join(timeout_s)
        if send_error:
            raise _lost(where, send_error[0], received=received, **info)
    result = {
        "command": "echo", **info, "sent": size, "received": received,
        "sha256_sent": hashlib.sha256(payload).hexdigest(),
        "sha256_received": digest.hexdigest(), "attempts": attempts,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    result["digest_ok"] = received == size and result["sha256_sent"] == result["sha256_received"]
    if not result["digest_ok"]:
        raise DataMismatch(f"{where}: sent {size} bytes, got back {received} bytes with another "
                           "digest", **result)
    return result


class _EchoSession:
    """One of many concurrent echo connections, driven by ``tcp_echo_many``'s selector."""

    def __init__(self, sock: socket.socket, payload: bytes, attempts: int) -> None:
        self.sock, self.payload, self.attempts = sock, memoryview(payload), attempts
        self.info = endpoints(sock)
        self.sent = self.received = 0
        self.digest = hashlib.sha256()
        self.done = False

    def result(self) -> dict:
        size = len(self.payload)
        sent_digest = hashlib.sha256(self.payload).hexdigest()
        return {"command": "echo", **self.info, "sent": size, "received": self.received,
                "sha256_sent": sent_digest, "sha256_received": self.digest.hexdigest(),
                "attempts": self.attempts,
                "digest_ok": self.received == size and sent_digest == self.digest.hexdigest()}


def tcp_echo_many(host: str, port: int, family: int, size: int, connections: int,
                  deadline_s: float, timeout_s: float) -> dict:
    """``connections`` clients at once, each with its own random payload; all must come back.

    All connect first, then one selectors loop (one thread, however many clients) sends every
    payload and reads every echo at the same time.
    """
    sessions = []
    try:
        for _ in range(connections):
            sock, attempts = connect(host, port, family, deadline_s, timeout_s)
            sessions.append(_EchoSession(sock, os.urandom(size), attempts))
        started = time.perf_counter()
        _drive(sessions, timeout_s)
    finally:
        for session in sessions:
            session.sock.close()
    results = [session.result() for session in sessions]
    summary = {
        "command": "echo", "connections": connections, "completed": len(results),
        "distinct_payloads": len({r["sha256_sent"] for r in results}),
        "all_ok": all(r["digest_ok"] for r in results), "results": results,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    if not summary["all_ok"]:
        bad = sum(not r["digest_ok"] for r in results)
        raise DataMismatch(f"{bad} of {connections} echo clients got other bytes back", **summary)
    return summary


def _drive(sessions: list[_EchoSession], timeout_s: float) -> None:
    with selectors.DefaultSelector() as selector:
        for session in sessions:
            session.sock.setblocking(False)
            selector.register(session.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, session)
        pending = len(sessions)
        while pending:
            events = selector.select(timeout_s)
            if not events:
                done = sum(s.done for s in sessions)
                raise TimedOut(f"echo: no progress for {timeout_s:g}s with {done} of "
                               f"{len(sessions)} clients done")
            for key, mask in events:
                session: _EchoSession = key.data
                where = f"echo {endpoint((session.info['peer_ip'], session.info['peer_port']))}"
                try:
                    if mask & selectors.EVENT_WRITE:
                        chunk = session.payload[session.sent:session.sent + RECV_BYTES]
                        session.sent += session.sock.send(chunk)
                        if session.sent == len(session.payload):
                            session.sock.shutdown(socket.SHUT_WR)
                            selector.modify(session.sock, selectors.EVENT_READ, session)
                    if mask & selectors.EVENT_READ:
                        data = session.sock.recv(RECV_BYTES)
                        if not data:
                            session.done = True
                            selector.unregister(session.sock)
                            pending -= 1
                        session.digest.update(data)
                        session.received += len(data)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    raise _lost(where, exc, **session.info) from None


def udp_echo(host: str, port: int, family: int, size: int, count: int, retries: int,
             reply_timeout_s: float, deadline_s: float) -> dict:
    """Send ``count`` datagrams one at a time; each must come back intact.

    UDP may lose a datagram (or its echo): we resend after ``reply_timeout_s``, up to ``retries``
    times, and report how many were resent. A stale echo of an earlier try is recognised by its
    sequence number and skipped.
    """
    size = max(size, 8)
    (fam, kind, proto, _, addr), _ = retrying(
        f"{host}:{port}/udp", lambda: resolve(host, port, family, socket.SOCK_DGRAM)[0],
        deadline_s)
    resent = 0
    started = time.perf_counter()
    with socket.socket(fam, kind, proto) as sock:
        sock.connect(addr)
        sock.settimeout(reply_timeout_s)
        local = sock.getsockname()
        info = {"family": "IPv6" if fam == socket.AF_INET6 else "IPv4",
                "local_ip": plain_ip(local[0]), "local_port": local[1],
                "peer_ip": plain_ip(addr[0]), "peer_port": addr[1]}
        where = f"udp {endpoint(addr)}"
        for seq in range(count):
            payload = seq.to_bytes(8, "big") + os.urandom(size - 8)
            for attempt in range(retries + 1):
                if attempt:
                    resent += 1
                sock.send(payload)
                if _await_echo(sock, payload, reply_timeout_s):
                    break
            else:
                raise TimedOut(f"{where}: no echo of datagram {seq} after {retries + 1} tries "
                               f"({reply_timeout_s:g}s each)", sent=seq, resent=resent, **info)
    return {"command": "udp", **info, "datagrams": count, "size": size, "echoed": count,
            "resent": resent, "digest_ok": True,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3)}


def _await_echo(sock: socket.socket, payload: bytes, timeout_s: float) -> bool:
    """True once ``payload`` comes back; False on timeout or an ICMP refusal (server down)."""
    until = time.monotonic() + timeout_s
    while (left := until - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            reply = sock.recv(len(payload) + 1)
        except (TimeoutError, ConnectionRefusedError):
            return False
        if reply == payload:
            return True
        if reply[:8] < payload[:8]:
            continue  # the late echo of an earlier datagram
        raise DataMismatch(f"udp: echo of {len(payload)} bytes came back as other bytes "
                           f"({len(reply)} bytes)")
    return False


def greet(host: str, port: int, family: int, deadline_s: float, timeout_s: float) -> dict:
    """Read the greeting line; check that it names our own address as the server saw it."""
    sock, attempts = connect(host, port, family, deadline_s, timeout_s)
    with sock:
        info = endpoints(sock)
        where = f"greet {endpoint((info['peer_ip'], info['peer_port']))}"
        data = b""
        try:
            while len(data) <= GREETING_MAX_BYTES and (chunk := sock.recv(1024)):
                data += chunk
        except TimeoutError:
            raise TimedOut(f"{where}: no greeting within {timeout_s:g}s", **info) from None
        except OSError as exc:
            raise _lost(where, exc, **info) from None
    line = data.decode("utf-8", "replace").strip()
    if not line:
        raise ProtocolError(f"{where}: the server closed without a greeting", **info)
    me = f"[{info['local_ip']}]" if info["family"] == "IPv6" else info["local_ip"]
    return {"command": "greet", **info, "line": line, "attempts": attempts,
            "names_me": f"You are {me}:{info['local_port']}" in line}
