"""The server's protocols without sockets: bytes in, replies out, through the code the server runs.

A ``MemoryTransport`` implements the same ``labserver.base.Transport`` interface as the loop's
``TcpTransport`` (``test_transport_interface`` checks both against it), so a test, the
Hypothesis state machine and the atheris fuzzers drive ``AppProtocol`` exactly as the loop does,
only with a clock, pauses and work turns they control.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from lab import appconn, framing, registry
from lab.netinfo import Peer, peer_of
from labserver.base import Protocol
from labserver.limits import WarningLimiter
from labserver.loop import WORK_SLICE_S

log = logging.getLogger("inmemory")

# The only codes an error reply may carry: the codec's, plus the app's own.
APP_CODES = appconn.APP_ERROR_CODES
CODEC_CODES = framing.REMOTE_ERROR_CODES


class MemoryTransport:
    """A ``Transport`` whose peer is the test: everything written lands in ``sent``.

    ``protocol`` is built with ``settings``, as the server's listener builds it. ``budget``
    plays the server's memory budget (bytes the write buffer may take)."""

    def __init__(
        self, protocol: Callable[..., Protocol], budget: int = 1 << 30, **settings: Any
    ) -> None:
        self.conn_id = 1
        self.peer: Peer = peer_of(("::ffff:172.20.0.3", 40000, 0, 0))
        self.local: Peer = peer_of(("::ffff:172.20.0.2", registry.default_port("app"), 0, 0))
        self.now = 1000.0
        self.budget = budget
        self.warnings = WarningLimiter(log)
        self.sent = bytearray()
        self.closing: str | None = None
        self.aborted = False
        self.reading = True
        self.paused_since: float | None = None
        self.paused_total = 0.0
        self.work_requested = False
        self.checks_asked: list[float] = []  # check_by(when) calls: deadlines the protocol set
        self.turn_cpu_s: list[float] = []  # CPU time of each turn the protocol took
        self.protocol = protocol(**settings)
        self.protocol.connection_made(self)

    # -- the Transport interface ------------------------------------------------------------
    def time(self) -> float:
        return self.now

    def check_by(self, when: float) -> None:
        self.checks_asked.append(when)  # the in-memory clock checks every turn anyway

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        if self.closing is not None:
            return False
        if len(data) > self.budget:
            return False
        self.sent += data
        return True

    def get_write_buffer_size(self) -> int:
        return 0  # the test reads everything at once

    def is_closing(self) -> bool:
        return self.closing is not None

    def close(self, reason: str) -> None:
        if self.closing is None:
            self.closing = reason

    def abort(self, reason: str, farewell: bytes = b"") -> None:
        if self.closing is None:
            self.sent += farewell
            self.closing, self.aborted = reason, True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def reading_paused_s(self) -> float:
        if self.paused_since is None:
            return self.paused_total
        return self.paused_total + self.now - self.paused_since

    def idle_s(self) -> float:
        return 0.0  # the test's peer is always just now

    def request_work(self) -> None:
        self.work_requested = True

    def warn(self, kind: str, msg: str, *args: object, **fields: object) -> None:
        self.warnings.warn(kind, self.now, msg, *args)

    # -- what the test does -----------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes from the peer, as the loop hands them over: a view of a buffer it reuses; then
        the work the protocol asked for, turn by turn, as the loop runs it."""
        if self.closing is not None:
            return
        scratch = bytearray(data)
        self._turn(self.protocol.data_received, memoryview(scratch))
        scratch[:] = b"\xaa" * len(scratch)  # a protocol that kept the view would see this
        self.run_work()

    def receive_eof(self) -> None:
        if self.closing is None:
            self._turn(self.protocol.eof_received)
            self.run_work()

    def run_work(self, turns: int = 1 << 30) -> None:
        """Run requested work, a turn (a slice of WORK_SLICE_S) at a time."""
        for _ in range(turns):
            if not self.work_requested or self.closing is not None:
                return
            self.work_requested = False
            more = self._turn(self.protocol.work, time.perf_counter() + WORK_SLICE_S)
            self.work_requested = self.work_requested or bool(more)

    def _turn(self, call: Callable[..., object], *args: object) -> object:
        started = time.thread_time()
        result = call(*args)
        self.turn_cpu_s.append(time.thread_time() - started)
        return result

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.closing is None:
            self.protocol.check_deadline(self.now)

    def backpressure(self, paused: bool) -> None:
        """The loop stops (or resumes) reading this connection: the peer cannot send."""
        if paused and self.paused_since is None:
            self.paused_since = self.now
        elif not paused and self.paused_since is not None:
            self.paused_total += self.now - self.paused_since
            self.paused_since = None

    def lose(self, reason: str = "test") -> None:
        """The connection goes: ``connection_lost``, as the transport delivers it."""
        self.protocol.connection_lost(reason)

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
