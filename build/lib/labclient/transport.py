"""Resolving and connecting, with bounded retries: the server may still be starting.

Retries use exponential backoff with jitter (0.1 s doubling to 2 s, each delay drawn from its
upper half) until a deadline; then the last reason is reported as ``Unreachable``.
"""

from __future__ import annotations

import random
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

from lab.netinfo import family_name, plain_ip

from .errors import TimedOut, Unreachable
from .results import Endpoints, Result

T = TypeVar("T")
FAMILIES = {"4": socket.AF_INET, "6": socket.AF_INET6, "any": socket.AF_UNSPEC}
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0


@dataclass(frozen=True)
class Target:
    """Where an exchange goes and how long it may take: a server's name and port, the IP
    version (``socket.AF_INET``, ``AF_INET6`` or ``AF_UNSPEC``), how long to keep retrying to
    connect, how long an exchange may make no progress, and how long it may take in all (a
    server that trickles a byte now and then makes progress, and still ends)."""

    host: str
    port: int
    family: int = socket.AF_UNSPEC
    deadline_s: float = 30.0
    timeout_s: float = 10.0
    max_time_s: float = 60.0  # one exchange, in all, once connected

    def clock(self) -> Deadline:
        """The overall deadline of an exchange that starts now."""
        return Deadline(self.max_time_s)

    def at(self, port: int, family: int | None = None) -> Target:
        return replace(self, port=port, family=self.family if family is None else family)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class Deadline:
    """A point in time an exchange must end by (``TimedOut`` past it)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def check(self, what: str, endpoints: Endpoints | None = None, **details: int) -> float:
        """The time left; ``TimedOut`` if there is none."""
        left = self.left()
        if left <= 0:
            raise TimedOut(
                f"{what}: not done after {self.seconds:g}s in all (--max-time)",
                endpoints,
                None,
                **details,
            )
        return left


def _note(message: str) -> None:
    print(f"client: {message}", file=sys.stderr, flush=True)


def backoff_delays(deadline: float) -> Iterator[float]:
    """Delays before each retry: exponential, jittered, never past ``deadline`` (monotonic)."""
    base = FIRST_BACKOFF_S
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        yield min(remaining, base * random.uniform(0.5, 1.0))
        base = min(MAX_BACKOFF_S, base * 2)


def retrying(
    what: str, attempt: Callable[[], T], deadline_s: float, note: Callable[[str], None] = _note
) -> tuple[T, int]:
    """Call ``attempt`` until it returns, retrying OSErrors until ``deadline_s`` has passed."""
    deadline = time.monotonic() + deadline_s
    delays = backoff_delays(deadline)
    tries = 0
    while True:
        tries += 1
        try:
            return attempt(), tries
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            delay = next(delays, None)
            if delay is None:
                raise Unreachable(
                    f"{what} unreachable after {tries} attempts in {deadline_s:g}s: {reason}",
                    attempts=tries,
                ) from None
            note(f"{what} not reachable yet ({reason}); retry {tries} in {delay:.2f}s")
            time.sleep(delay)


def resolve(host: str, port: int, family: int, kind: int) -> list[tuple]:
    """getaddrinfo, IPv4 first when either will do (so ``any`` is predictable)."""
    infos = socket.getaddrinfo(host, port, family, kind)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return infos


def connect(target: Target, note: Callable[[str], None] = _note) -> tuple[socket.socket, int]:
    """A connected TCP socket (with the target's timeout set) and how many attempts it took."""

    def attempt() -> socket.socket:
        last: OSError = OSError("no address")
        for fam, kind, proto, _, addr in resolve(
            target.host, target.port, target.family, socket.SOCK_STREAM
        ):
            sock = socket.socket(fam, kind, proto)
            sock.settimeout(target.timeout_s)
            try:
                sock.connect(addr)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        raise last

    sock, tries = retrying(str(target), attempt, target.deadline_s, note)
    return sock, tries


def endpoints(sock: socket.socket) -> Endpoints:
    """Who talked to whom, as plain addresses: the heart of the cross-host proof. A connection
    the server reset at once has no peer any more: that is a lost connection, not a crash."""
    try:
        local, peer = sock.getsockname(), sock.getpeername()
    except OSError as exc:
        raise Unreachable(
            f"connection lost right after connecting ({exc.strerror or exc})"
        ) from None
    return Endpoints(family_name(peer[0]), plain_ip(local[0]), local[1], plain_ip(peer[0]), peer[1])


def retry_exchange(
    what: str,
    attempt: Callable[[], Result],
    retries: int,
    deadline_s: float,
    note: Callable[[str], None] = _note,
) -> Result:
    """Run an idempotent exchange; if the connection is lost or stalls, run it again (with
    backoff, at most ``retries`` more times). Wrong data or protocol errors are not retried."""
    delays = backoff_delays(time.monotonic() + deadline_s)
    for retry in range(retries + 1):
        try:
            result = attempt()
        except (Unreachable, TimedOut) as exc:
            delay = next(delays, None) if retry < retries else None
            if delay is None:
                raise
            note(
                f"{what}: {exc}; running the exchange again ({retry + 1} of {retries}) in "
                f"{delay:.2f}s"
            )
            time.sleep(delay)
        else:
            return result.with_retries(retry)
    raise AssertionError("unreachable")  # the loop returns or raises
