"""A TCP connection's socket shell: moves bytes between the kernel and its protocol, holds the
write buffer, and applies the flow control ``base`` describes.

    readable -> room = high water - held -> loop.make_room(room) -> recv_into(loop's buffer, room)
             -> protocol.data_received(view)
    write    -> sent at once as far as the kernel takes it; the rest waits in outbuf (charged
                against the memory budget before it is buffered)
    writable -> flush outbuf; below half the write high-water mark: protocol.resume_writing()
    close    -> flush, half-close, read and discard until the peer's FIN (at most LINGER_S),
                close: a lingering close, so that a last reply is not destroyed by a reset
    abort    -> close now

Everything it asks of the loop goes through the loop's methods (``make_room``, ``can_hold``,
``charge``, ``set_events``, ``request_work``, ``transport_closed``). A peer that goes away (reset,
broken pipe) is a normal event: one log line, no traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.netinfo import Peer, peer_of

from .base import Protocol
from .poller import EVENT_READ, EVENT_WRITE

RECV_BYTES = 256 << 10  # the most one read takes (the loop's receive buffer is this large)

if TYPE_CHECKING:
    from .loop import EventLoop

LINGER_S = 2.0  # after our half-close, how long we wait for the peer's FIN before closing

log = logging.getLogger("server")


# An empty write buffer is this one shared object; a bytearray is made only when bytes wait (an
# idle connection then holds no buffer of its own: 56 bytes each, 5.6 MB at 100,000).
NOTHING_UNSENT = b""


@dataclass(frozen=True)
class FlowLimits:
    """A connection's marks, in bytes. Reading stops at ``high_water`` bytes held (write buffer
    plus what the protocol holds) and resumes below half of it; writing is paused (the protocol
    told) at ``write_high`` bytes in the write buffer and resumed below half of it."""

    high_water: int
    write_high: int


def reason_of(exc: OSError) -> str:
    """A short, log-friendly name for why a socket operation failed."""
    if isinstance(exc, ConnectionResetError):
        return "reset by peer"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe"
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return "timed out (keepalive)"
    return exc.strerror or type(exc).__name__


class TcpTransport:
    """One TCP peer: its socket, its write buffer, its counters, and its protocol."""

    __slots__ = (
        "__weakref__",
        "_local",
        "closed",
        "closing",
        "conn_id",
        "draining_since",
        "due",
        "held",
        "last_active",
        "last_rx",
        "last_work_s",
        "limits",
        "loop",
        "mask",
        "opened",
        "outbuf",
        "paused_since",
        "paused_total",
        "peer",
        "protocol",
        "read_eof",
        "reading_paused",
        "recent_work",
        "rx",
        "sock",
        "tx",
        "work_queued",
        "worked_at",
        "writing_paused",
    )

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        peer: Peer,
        conn_id: int,
        protocol: Protocol,
        limits: FlowLimits,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.peer = peer
        self._local: Peer | None = None
        self.conn_id = conn_id
        self.limits = limits
        self.outbuf: bytes | bytearray = NOTHING_UNSENT
        self.mask = 0
        self.rx = self.tx = 0
        self.opened = self.last_rx = self.last_active = loop.now
        self.read_eof = False
        self.closing: str | None = None  # set by close(): the reason we will close
        self.draining_since: float | None = None
        self.due = float("inf")  # when the loop will next check its time limits
        self.closed = False
        self.held = 0  # bytes held, as counted in the loop's total
        self.reading_paused = False  # by the protocol (pause_reading)
        self.writing_paused = False  # the protocol was told pause_writing
        self.paused_since: float | None = None  # not reading for back-pressure since
        self.paused_total = 0.0
        self.recent_work = 0.0  # the loop's work queue: work time had lately (decayed at worked_at)
        self.worked_at = 0.0
        self.last_work_s = 0.0  # how long its last turn of work took
        self.work_queued = False
        self.protocol: Protocol | None = protocol

    @property
    def quiet(self) -> bool:
        """In a container, loopback peers are the health check's probes: with
        LAB_QUIET_LOOPBACK their lines are logged at DEBUG."""
        return self.peer.loopback and self.loop.config.quiet_loopback

    # -- the Transport interface (base.Transport) -------------------------------------------
    @property
    def local(self) -> Peer:
        """Our end, parsed when first asked for (most protocols never ask)."""
        if self._local is None:
            self._local = peer_of(self.sock.getsockname())
        return self._local

    def time(self) -> float:
        return self.loop.now

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        if self.closed or self.closing is not None:
            return False
        loop = self.loop
        size = len(data)  # our views are of bytes: their length is their size
        if loop.buffered + size > loop.budget:  # as if the kernel took none of it: charged first
            self.account()  # what the protocol let go of (an answered request) is room again
            if loop.buffered + size > loop.budget:
                return False
        if self.outbuf:
            self.outbuf += data
        else:
            sent = self._send(data)
            if sent is None or sent == size:
                return sent is not None
            self.outbuf = bytearray(memoryview(data)[sent:])
        self.account()
        if not self.writing_paused and len(self.outbuf) >= self.limits.write_high:
            self.writing_paused = True
            self.protocol.pause_writing()  # type: ignore[union-attr]
        self.update_mask()
        return True

    def get_write_buffer_size(self) -> int:
        return len(self.outbuf)

    def is_closing(self) -> bool:
        return self.closed or self.closing is not None

    def close(self, reason: str) -> None:
        if self.closed or self.closing is not None:
            return
        self.closing = reason
        if self.outbuf:
            self.update_mask()
        else:
            self._finish()

    def abort(self, reason: str, farewell: bytes = b"") -> None:
        if self.closed:
            return
        self.outbuf = NOTHING_UNSENT
        if farewell:
            with contextlib.suppress(OSError):
                self.sock.send(farewell)
        self.close_now(reason)

    def pause_reading(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            self.update_mask()

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            self.update_mask()

    def check_by(self, when: float) -> None:
        self.loop.check_by(self, when)

    def reading_paused_s(self) -> float:
        if self.paused_since is None:
            return self.paused_total
        return self.paused_total + self.loop.now - self.paused_since

    def idle_s(self) -> float:
        return self.loop.now - self.last_active

    def request_work(self) -> None:
        if not self.closed:
            self.loop.request_work(self)

    def warn(self, kind: str, msg: str, *args: object, **fields: object) -> None:
        """A warning about this connection, rate-limited per kind; ``fields`` for the JSON
        form, with the connection's own (event, listener, conn, peer) added."""
        extra = {"event": kind, "listener": self.name, "conn": self.conn_id, "peer": str(self.peer)}
        self.loop.warnings.warn(kind, self.loop.now, msg, *args, extra={**extra, **fields})

    # -- called by the loop ---------------------------------------------------------------
    def on_ready(self, mask: int) -> None:
        if self.closed:  # closed earlier in this turn (evicted, say)
            return
        if mask & EVENT_READ:
            self._on_readable()
        if mask & EVENT_WRITE and not self.closed:
            self._on_writable()

    def close_now(self, reason: str) -> None:
        """Close at once; the protocol is told and let go of."""
        if self.closed:
            return
        self.closed = True
        self.loop.transport_closed(self)
        self.sock.close()
        self.outbuf = NOTHING_UNSENT
        level = logging.DEBUG if self.quiet else logging.INFO
        self.loop.connection_event(
            level,
            "%s conn=%d closed peer=%s reason=%s rx=%d tx=%d after %.3fs",
            self.name,
            self.conn_id,
            self.peer,
            reason,
            self.rx,
            self.tx,
            self.loop.now - self.opened,
            extra={
                "event": "closed",
                "listener": self.name,
                "conn": self.conn_id,
                "peer": str(self.peer),
                "reason": reason,
                "rx": self.rx,
                "tx": self.tx,
                "seconds": round(self.loop.now - self.opened, 3),
            },
        )
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            self.loop.guarded(self, protocol.connection_lost, reason)
            if getattr(protocol, "transport", None) is self:  # whatever the hook did: no
                del protocol.transport  # cycle survives

    @property
    def name(self) -> str:
        return self.protocol.name if self.protocol is not None else "tcp"

    def account(self) -> None:
        """Count what this connection holds in the loop's total."""
        protocol = self.protocol
        held = len(self.outbuf)
        if protocol is not None and protocol.buffers:
            held += protocol.buffered_bytes()
        if held != self.held:
            self.loop.charge(held - self.held)
            self.held = held

    def linger_expired(self, now: float) -> bool:
        """Is this connection in its lingering close? Closes it once LINGER_S is up."""
        if self.draining_since is None:
            return False
        if now - self.draining_since >= LINGER_S:
            self.close_now(self.closing or "closed")
        return True

    def update_mask(self) -> None:
        """Wait for what we need next: to write what is buffered; to read unless the peer is
        done, we are closing, the protocol paused us, or we hold our high-water mark (and,
        once paused for that, until we are back below half of it)."""
        if self.closed or self.draining_since is not None:
            return
        want = EVENT_WRITE if self.outbuf else 0
        if not self.read_eof and self.closing is None and not self.reading_paused:
            mark = self.limits.high_water
            if self.held < (mark // 2 if self.paused_since is not None else mark):
                want |= EVENT_READ
        self._set_mask(want)

    # -- internals ------------------------------------------------------------------------
    def _on_readable(self) -> None:
        loop = self.loop
        if self.draining_since is not None:  # lingering close: discard until the peer's FIN
            try:
                size = self.sock.recv_into(loop.recv_buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                size = 0
            if not size:
                self.close_now(self.closing or "closed")
            return
        room = self.limits.high_water - self.held
        if room > RECV_BYTES:
            room = RECV_BYTES
        elif room <= 0:
            self.update_mask()
            return
        if loop.buffered + room > loop.budget:
            room = loop.make_room(self, room)  # past the budget, those holding most are closed
            if not room:  # and this was one of them
                return
        try:
            size = self.sock.recv_into(loop.recv_buffer, room)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close_now(reason_of(exc))
            return
        protocol = self.protocol
        assert protocol is not None
        if not size:
            self.read_eof = True
            protocol.eof_received()  # first: it may still answer (e.g. "truncated")
            if not self.closed:
                self.update_mask()
            return
        self.rx += size
        loop.bytes_rx += size
        self.last_rx = self.last_active = loop.now
        protocol.data_received(loop.recv_view[:size])
        if self.closed:
            return
        if protocol.buffers:
            self.account()
        # The common case (everything sent at once, nothing held): reading goes on as it was.
        if self.outbuf or self.held or self.mask != EVENT_READ:
            self.update_mask()

    def _on_writable(self) -> None:
        sent = self._send(self.outbuf)
        if sent is None:
            return
        if sent == len(self.outbuf):
            self.outbuf = NOTHING_UNSENT  # give the memory back, not just the bytes
        else:
            del self.outbuf[:sent]  # type: ignore[union-attr]  # unsent bytes: always write()'s bytearray
        self.account()
        if self.writing_paused and len(self.outbuf) < self.limits.write_high // 2:
            self.writing_paused = False
            self.loop.guarded(self, self.protocol.resume_writing)  # type: ignore[union-attr]
            if self.closed:
                return
        if not self.outbuf and self.closing is not None:
            self._finish()
        else:
            self.update_mask()

    def _send(self, data: bytes | bytearray | memoryview) -> int | None:
        """Send what the kernel takes now; None if the connection broke (it is closed)."""
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self.close_now(reason_of(exc))
            return None
        self.tx += sent
        self.loop.bytes_tx += sent
        if sent:
            self.last_active = self.loop.now
        return sent

    def _finish(self) -> None:
        """Everything is sent and we are closing: half-close, then wait briefly for the FIN."""
        if self.read_eof:
            self.close_now(self.closing or "closed")
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close_now(self.closing or "closed")
            return
        self.draining_since = self.loop.now
        self._set_mask(EVENT_READ)

    def _set_mask(self, want: int) -> None:
        if want == self.mask:
            return
        self.loop.set_events(self, self.mask, want)
        self.mask = want
        # Not reading for back-pressure: protocol deadlines do not run meanwhile.
        paused = not want & EVENT_READ and self.closing is None and not self.read_eof
        if paused and self.paused_since is None:
            self.paused_since = self.loop.now
        elif not paused and self.paused_since is not None:
            self.paused_total += self.loop.now - self.paused_since
            self.paused_since = None
