"""The server's protocols without sockets: bytes in, replies out, through the code the server runs.

A ``MemoryConnection`` stands where ``core.Connection`` stands for a protocol (the same attributes
and calls a protocol uses), so a test, the Hypothesis state machine and the atheris fuzzers drive
``AppProtocol`` exactly as the loop does, only with a clock and pauses they control.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from lab import defaults, framing
from labserver.limits import WarningLimiter

log = logging.getLogger("inmemory")

# The only codes an error reply may carry: the codec's, plus the app's own.
APP_CODES = {"unknown-action", "bad-value", "frame-deadline", "busy", "memory-budget"}
CODEC_CODES = {
    "header-not-json", "header-not-utf8", "header-not-object", "missing-key",
    "bad-content-length", "bad-type", "content-too-large", "bad-encoding", "content-not-json",
    "content-not-object", "truncated", "too-deep", "too-many-values",
}


@dataclass
class MemoryLoop:
    now: float = 1000.0
    warnings: WarningLimiter = field(default_factory=lambda: WarningLimiter(log))


class MemoryConnection:
    """What a protocol sees of its connection; everything written lands in ``sent``.
    ``settings`` are given to the protocol, as the server's listener gives them."""

    def __init__(self, protocol: type, **settings: object) -> None:
        self.loop = MemoryLoop()
        self.peer = ("::ffff:172.20.0.3", 40000, 0, 0)
        self.local = ("::ffff:172.20.0.2", defaults.APP_PORT, 0, 0)
        self.conn_id = 1
        self.last_rx = self.loop.now
        self.sent = bytearray()
        self.closing: str | None = None
        self.paused_since: float | None = None
        self.paused_total = 0.0
        self.ready: list = []  # what the protocol scheduled with call_soon
        self.turn_cpu_s: list[float] = []  # CPU time of each loop turn the protocol took
        self.protocol = protocol(self, **settings)
        self.protocol.connection_made()

    # -- what the protocol calls ------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.loop.now

    def warn(self, kind: str, msg: str, *args: object) -> None:
        self.loop.warnings.warn(kind, self.loop.now, msg, *args)

    def write(self, data: bytes | memoryview) -> None:
        if self.closing is None:
            self.sent += data

    def close_when_flushed(self, reason: str) -> None:
        if self.closing is None:
            self.closing = reason

    def call_soon(self, callback: object) -> None:
        self.ready.append(callback)

    def reading_paused_s(self, now: float) -> float:
        if self.paused_since is None:
            return self.paused_total
        return self.paused_total + now - self.paused_since

    # -- what the test does -----------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes from the peer, as the loop hands them over: a view of a buffer it reuses."""
        if self.closing is not None:
            return
        scratch = bytearray(data)
        self.last_rx = self.loop.now
        self._turn(self.protocol.data_received, memoryview(scratch))
        scratch[:] = b"\xaa" * len(scratch)  # a protocol that kept the view would see this
        self.run_ready()

    def receive_eof(self) -> None:
        if self.closing is None:
            self._turn(self.protocol.eof_received)
            self.run_ready()

    def run_ready(self, turns: int = 1 << 30) -> None:
        """Run scheduled work, a turn at a time (as the loop does between selects)."""
        for _ in range(turns):
            if not self.ready:
                return
            batch, self.ready = self.ready, []
            for callback in batch:
                if self.closing is None:
                    self._turn(callback)

    def _turn(self, call: object, *args: object) -> None:
        started = time.process_time()
        call(*args)
        self.turn_cpu_s.append(time.process_time() - started)

    def advance(self, seconds: float) -> None:
        self.loop.now += seconds
        if self.closing is None:
            self.protocol.check_deadline(self.loop.now)

    def pause_reading(self, paused: bool) -> None:
        if paused and self.paused_since is None:
            self.paused_since = self.loop.now
        elif not paused and self.paused_since is not None:
            self.paused_total += self.loop.now - self.paused_since
            self.paused_since = None

    def replies(self) -> list[framing.Message]:
        """Everything sent so far, decoded: it must always be well-formed frames."""
        decoder = framing.MessageDecoder(1 << 30)
        decoder.feed(bytes(self.sent))
        found = list(decoder.messages())
        assert not decoder.in_progress, "the server sent part of a frame"
        return found


def error_code(reply: framing.Message) -> str | None:
    if reply.is_json and isinstance(reply.value.get("error"), dict):
        return reply.value["error"]["code"]
    return None
