"""Bounds the server keeps on what peers can make it spend: memory, log lines, UDP replies.

- ``memory_budget``: how many bytes all connections together may hold in buffers (like Redis's
  ``maxmemory-clients``); derived from the container's memory limit unless set.
- ``WarningLimiter``: the first few warnings of a kind per window are logged one by one; the rest
  are counted and summarised once per window, so a flood of refusals or bad frames cannot turn
  into a flood of log lines, and nothing goes unreported.
- ``SourceBuckets``: a token bucket per UDP source address, so the echo cannot be aimed at a
  victim at line rate; the table of sources is bounded too.
- ``EchoLoopGuard``: the same payload again and again from one source is another echo service
  answering ours; the loop is cut after a few rounds, whatever the ports.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

from lab.netinfo import Peer

BUDGET_SHARE = 3  # a third of the memory limit: the rest is the interpreter, kernel buffers, slack
BUDGET_MIN_BYTES = 8 << 20
BUDGET_MAX_BYTES = 1 << 30
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_limit_bytes() -> int | None:
    """The cgroup's memory limit (v2, then v1), else the machine's memory; None if unknown."""
    for path in _CGROUP_LIMITS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 says "no limit" with a huge number
            return int(text)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def memory_budget(configured: int) -> int:
    """``configured`` if set, else a third of the memory limit, within [8 MiB, 1 GiB]."""
    if configured:
        return configured
    limit = memory_limit_bytes() or BUDGET_MAX_BYTES * BUDGET_SHARE
    return max(BUDGET_MIN_BYTES, min(BUDGET_MAX_BYTES, limit // BUDGET_SHARE))


class WarningLimiter:
    """Log at most ``burst`` warnings per kind per ``window_s``; count and summarise the rest."""

    def __init__(
        self, logger: logging.Logger, burst: int = 5, window_s: float = 5.0, noun: str = "warning"
    ) -> None:
        self.log = logger
        self.burst = burst
        self.window_s = window_s
        self.noun = noun
        self._windows: dict[str, list[float]] = {}  # kind -> [start, logged, suppressed]

    def warn(
        self,
        kind: str,
        now: float,
        msg: str,
        *args: object,
        level: int = logging.WARNING,
        extra: dict[str, object] | None = None,
    ) -> None:
        window = self._windows.get(kind)
        if window is None or now - window[0] >= self.window_s:
            if window is not None:
                self._summarise(kind, window, now)
            window = self._windows[kind] = [now, 0, 0]
        if window[1] < self.burst:
            window[1] += 1
            # The JSON form's fields: the line's own, its kind (which a summary line counts
            # under), and the kind as its event unless the line names one.
            self.log.log(level, msg, *args, extra={"event": kind, **(extra or {}), "kind": kind})
        else:
            window[2] += 1

    def flush(self, now: float, force: bool = False) -> None:
        """Summarise every window that is over (all of them with ``force``, at shutdown)."""
        for kind, window in list(self._windows.items()):
            if force or now - window[0] >= self.window_s:
                self._summarise(kind, window, now)
                del self._windows[kind]

    def _summarise(self, kind: str, window: list[float], now: float) -> None:
        if window[2]:
            self.log.warning(
                "suppressed %d more %s %s(s) in the last %.1fs",
                window[2],
                kind,
                self.noun,
                now - window[0],
                extra={"event": "suppressed", "kind": kind, "count": int(window[2])},
            )


class SourceBuckets:
    """A token bucket per source address: ``rate`` per second, a burst of one second's worth.
    Remembers the ``max_sources`` most recent sources; a forgotten one starts with a full
    bucket, which is the right default for a source that has been quiet."""

    def __init__(self, rate: float, max_sources: int = 4096) -> None:
        self.rate = rate
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # ip -> [tokens, when]

    def allow(self, source: str, now: float) -> bool:
        if not self.rate:
            return True
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = [self.rate, now]
            if len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
            bucket[0] = min(self.rate, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1:
            bucket[0] -= 1
            return True
        return False


class EchoLoopGuard:
    """Notices two echo services answering each other: the same payload from the same source,
    again and again, each within ``window_s`` of the last. After ``repeats`` such echoes the
    source's identical datagrams are dropped until it sends something else (or pauses).

    Chosen over a list of known echo ports (another echo service may listen anywhere) and over a
    per-source budget of identical payloads over a long window (a client that resends a lost
    datagram, or pings with the same payload once a second, is no loop): a ping-pong repeats at
    the round-trip time, tens of thousands of times a second, and is cut after ``repeats``.
    Costs a CRC-32 of each datagram and a bounded table of the last payload per source."""

    def __init__(self, repeats: int = 8, window_s: float = 0.5, max_sources: int = 4096) -> None:
        self.repeats = repeats
        self.window_s = window_s
        self.max_sources = max_sources
        # source -> [digest, when, count]
        self._last: OrderedDict[Peer, list[Any]] = OrderedDict()

    def looping(self, source: Peer, data: memoryview, now: float) -> bool:
        digest = (len(data), zlib.crc32(data))
        last = self._last.get(source)
        if last is None:
            self._last[source] = [digest, now, 0]
            if len(self._last) > self.max_sources:
                self._last.popitem(last=False)
            return False
        self._last.move_to_end(source)
        if last[0] == digest and now - last[1] < self.window_s:
            last[2] += 1
        else:
            last[0], last[2] = digest, 0
        last[1] = now
        return bool(last[2] >= self.repeats)
