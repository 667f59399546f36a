"""One function per listener: do one exchange with a ``Target``, check it, return its result
(``results.py``). A failed check raises a ``ClientError`` carrying what was observed.
"""

from __future__ import annotations

import os
import socket
import time

from lab.greeting import parse_greeting
from lab.netinfo import endpoint, plain_ip

from .errors import DataMismatch, ProtocolError, TimedOut, Unreachable, connection_lost
from .results import EchoManyResult, EchoResult, Endpoints, GreetResult, UdpResult
from .sessions import EchoSession, drive
from .transport import Target, connect, endpoints, resolve, retrying

GREETING_MAX_BYTES = 4096


def tcp_echo(target: Target, size: int, pace_s: float = 0.0, text: str | None = None) -> EchoResult:
    """Send ``size`` random bytes (or ``text``), half-close, read the echo to EOF, compare
    length and digest; with ``text``, the result carries the echo too.

    ``pace_s`` makes a slow sender: a pause between 64 KiB chunks.
    """
    payload = os.urandom(size) if text is None else text.encode("utf-8")
    size = len(payload)
    sock, attempts = connect(target)
    with sock:
        client = EchoSession(sock, payload, attempts, pace_s, keep=text is not None)
        started = time.perf_counter()
        drive([client], target.timeout_s, target.clock())
    if client.closed_early():
        raise Unreachable(
            f"echo {client.where}: the server closed after echoing "
            f"{client.received_bytes} of {size} bytes",
            client.endpoints,
        )
    result = client.result(_ms_since(started))
    if not result.digest_ok:
        raise DataMismatch(
            f"echo {client.where}: sent {size} bytes, got back "
            f"{result.received} bytes with another digest",
            result=result,
        )
    return result


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def tcp_echo_many(target: Target, size: int, connections: int) -> EchoManyResult:
    """``connections`` clients at once, each with its own random payload; all must come back.

    All connect first, then one selectors loop sends every payload and reads every echo at the
    same time (``sessions.drive``).
    """
    clients: list[EchoSession] = []
    try:
        for _ in range(connections):
            sock, attempts = connect(target)
            clients.append(EchoSession(sock, os.urandom(size), attempts))
        started = time.perf_counter()
        drive(clients, target.timeout_s, target.clock())
    finally:
        for client in clients:
            client.sock.close()
    elapsed_ms = _ms_since(started)
    results = tuple(client.result(elapsed_ms) for client in clients)
    summary = EchoManyResult(
        connections,
        len(results),
        len({r.sha256_sent for r in results}),
        all(r.digest_ok for r in results),
        results,
        elapsed_ms,
    )
    if not summary.all_ok:
        bad = sum(not r.digest_ok for r in results)
        raise DataMismatch(
            f"{bad} of {connections} echo clients got other bytes back", result=summary
        )
    return summary


REPLY_BACKOFF_CAP = 8  # the longest wait for a UDP echo, in first waits


def udp_echo(
    target: Target, size: int, count: int, retries: int, reply_timeout_s: float
) -> UdpResult:
    """Send ``count`` datagrams one at a time; each must come back intact.

    UDP may lose a datagram (or its echo): we resend after ``reply_timeout_s``, up to ``retries``
    times, waiting twice as long after each resend (at most REPLY_BACKOFF_CAP times the first
    wait: a path that is slow for a while, not only lossy, is waited out), and report how many
    were resent. A stale echo of an earlier try is recognised by its sequence number and
    skipped.
    """
    size = max(size, 8)
    found, _ = retrying(
        f"{target}/udp",
        lambda: resolve(target.host, target.port, target.family, socket.SOCK_DGRAM)[0],
        target.deadline_s,
    )
    fam, kind, proto, _, addr = found
    resent = 0
    started = time.perf_counter()
    deadline = target.clock()
    with socket.socket(fam, kind, proto) as sock:
        sock.connect(addr)
        sock.settimeout(reply_timeout_s)
        local = sock.getsockname()
        ends = Endpoints(
            "IPv6" if fam == socket.AF_INET6 else "IPv4",
            plain_ip(local[0]),
            local[1],
            plain_ip(addr[0]),
            addr[1],
        )
        where = f"udp {endpoint(addr)}"
        for seq in range(count):
            payload = seq.to_bytes(8, "big") + os.urandom(size - 8)
            for attempt in range(retries + 1):
                deadline.check(where, ends, sent=seq, resent=resent)
                if attempt:
                    resent += 1
                sock.send(payload)
                wait_s = reply_timeout_s * min(2**attempt, REPLY_BACKOFF_CAP)
                if _await_echo(sock, payload, wait_s):
                    break
            else:
                raise TimedOut(
                    f"{where}: no echo of datagram {seq} after {retries + 1} tries "
                    f"(waiting {reply_timeout_s:g}s, doubled after each resend up to "
                    f"{reply_timeout_s * REPLY_BACKOFF_CAP:g}s)",
                    ends,
                    sent=seq,
                    resent=resent,
                )
    return UdpResult(
        ends,
        datagrams=count,
        size=size,
        echoed=count,
        resent=resent,
        digest_ok=True,
        elapsed_ms=_ms_since(started),
    )


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
        raise DataMismatch(
            f"udp: echo of {len(payload)} bytes came back as other bytes ({len(reply)} bytes)"
        )
    return False


def greet(target: Target) -> GreetResult:
    """Read the greeting line (at most GREETING_MAX_BYTES, within the overall deadline); check
    that it names our own address as the server saw it."""
    sock, attempts = connect(target)
    deadline = target.clock()
    with sock:
        ends = endpoints(sock)
        where = f"greet {ends.where}"
        data = b""
        try:
            while len(data) <= GREETING_MAX_BYTES:
                sock.settimeout(min(target.timeout_s, deadline.check(where, ends)))
                if not (chunk := sock.recv(1024)):
                    break
                data += chunk
        except TimeoutError:
            deadline.check(where, ends)
            raise TimedOut(f"{where}: no greeting within {target.timeout_s:g}s", ends) from None
        except OSError as exc:
            raise connection_lost(where, exc, ends) from None
    line = data.decode("utf-8", "replace").strip()
    if not line:
        raise ProtocolError(f"{where}: the server closed without a greeting", ends)
    greeting = parse_greeting(line)
    mine = endpoint((ends.local_ip, ends.local_port))
    return GreetResult(
        ends,
        line=line,
        attempts=attempts,
        names_me=greeting is not None and greeting.client == mine,
    )
