"""A TCP peer (``Connection``) and the application logic it runs (``Protocol``).

Flow::

    readable -> sock.recv_into(loop's buffer) -> protocol.data_received(view) -> conn.write(reply)
    conn.write -> sent at once; what the kernel does not take waits in conn.outbuf
    writable -> flush outbuf.  outbuf >= write_buffer_bytes pauses reading (back-pressure: a peer
                that never reads cannot make us buffer without bound)
    close_when_flushed -> flush, half-close, drain the peer briefly, close (a lingering close, so
                an error reply is not destroyed by a reset)

Protocols never touch sockets: they receive bytes and call ``conn.write`` and
``conn.close_when_flushed``; they get their settings when they are built (keyword arguments given
to the listener), and what they need of the loop through the connection (``now``, ``warn``,
``call_soon``). A peer that goes away (reset, broken pipe) is a normal event: one log line, no
traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from lab.netinfo import endpoint, is_loopback

if TYPE_CHECKING:
    from .loop import EventLoop

LINGER_S = 2.0  # after our half-close, how long we wait for the peer's FIN before closing

log = logging.getLogger("server")


class Protocol:
    """One connection's application logic. Subclass and override the hooks you need.

    Hooks: ``connection_made()``, ``data_received(data)``, ``eof_received()``,
    ``between_exchanges(now)`` (may a shutdown close us now?), ``check_deadline(now)`` (called
    by housekeeping; may close the connection), ``buffered_bytes()`` (what the protocol holds,
    counted against the memory budget), ``release()`` (drop it: the connection is being closed
    to stay within the budget), ``goodbye(reason)`` (a last word when a limit closes us).
    ``data`` is a memoryview of the loop's receive buffer, valid only during the call: copy what
    you keep. ``refusal`` is sent to a peer turned away at capacity; ``speaks_first`` protocols
    are exempt from the first-byte timeout. ``name`` labels the log lines.
    """

    name = "tcp"
    refusal = b""
    speaks_first = False

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def connection_made(self) -> None:
        pass

    def data_received(self, data: memoryview) -> None:
        raise NotImplementedError

    def eof_received(self) -> None:
        self.conn.close_when_flushed("peer closed")

    def between_exchanges(self, now: float) -> bool:
        return True

    def check_deadline(self, now: float) -> None:
        pass

    def buffered_bytes(self) -> int:
        return 0

    def release(self) -> None:
        pass

    def goodbye(self, reason: str) -> bytes:
        """What to tell a peer whose connection a limit closes (``reason``), if anything."""
        return b""


def reason_of(exc: OSError) -> str:
    """A short, log-friendly name for why a socket operation failed."""
    if isinstance(exc, ConnectionResetError):
        return "reset by peer"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe"
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return "timed out (keepalive)"
    return exc.strerror or type(exc).__name__


class Connection:
    """A TCP peer: its socket, its unsent bytes, its counters and its protocol."""

    __slots__ = (
        "closed",
        "closing",
        "conn_id",
        "draining_since",
        "held",
        "last_active",
        "last_rx",
        "local",
        "loop",
        "mask",
        "opened",
        "outbuf",
        "paused_since",
        "paused_total",
        "peer",
        "pending",
        "protocol",
        "quiet",
        "read_eof",
        "rx",
        "sock",
        "tx",
        "write_buffer_bytes",
    )

    def __init__(self, loop: EventLoop, sock: socket.socket, peer: tuple, conn_id: int,
                 protocol_factory: Callable[[Connection], Protocol],
                 write_buffer_bytes: int) -> None:
        self.loop = loop
        self.sock = sock
        self.peer = peer
        self.local = sock.getsockname()
        self.conn_id = conn_id
        self.write_buffer_bytes = write_buffer_bytes
        self.outbuf = bytearray()
        self.mask = selectors.EVENT_READ
        self.rx = self.tx = 0
        self.opened = self.last_rx = self.last_active = loop.now
        self.read_eof = False
        self.closing: str | None = None  # set by close_when_flushed: the reason we will close
        self.draining_since: float | None = None
        self.closed = False
        self.quiet = is_loopback(peer[0])  # health probes come from loopback: log them at DEBUG
        self.held = 0  # bytes buffered for this connection, as counted in loop.buffered
        self.pending = 0  # callbacks scheduled with call_soon and not yet run
        self.paused_since: float | None = None  # reading paused for back-pressure since
        self.paused_total = 0.0
        self.protocol: Protocol = protocol_factory(self)

    # -- what protocols may use of the loop ------------------------------------------------
    @property
    def now(self) -> float:
        return self.loop.now

    def warn(self, kind: str, msg: str, *args: object) -> None:
        """A warning, rate-limited per ``kind`` (see ``limits.WarningLimiter``)."""
        self.loop.warnings.warn(kind, self.loop.now, msg, *args)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the loop's next turn (a protocol with more work than one turn
        should take does the rest there, so other connections get their turn in between)."""
        self.pending += 1
        self.loop.ready.append((self, callback))

    # -- called by the loop -------------------------------------------------------------
    def on_ready(self, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            self._on_readable()
        if mask & selectors.EVENT_WRITE and not self.closed:
            self._on_writable()

    def _on_readable(self) -> None:
        loop = self.loop
        try:
            size = self.sock.recv_into(loop.recv_buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(reason_of(exc))
            return
        if self.draining_since is not None:  # lingering close: discard until the peer's FIN
            if not size:
                self.close(self.closing or "closed")
            return
        if not size:
            self.read_eof = True
            self.protocol.eof_received()  # first: it may still answer (e.g. "truncated")
            if not self.closed and self.closing is None:
                self.update_mask()
            return
        self.rx += size
        self.last_rx = self.last_active = loop.now
        self.protocol.data_received(loop.recv_view[:size])
        if not self.closed:
            self.account()

    def _on_writable(self) -> None:
        sent = self._send(self.outbuf)
        if sent is None:
            return
        if sent == len(self.outbuf):
            self.outbuf = bytearray()  # give the memory back, not just the bytes
        else:
            del self.outbuf[:sent]
        self.account()
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
            self.close(reason_of(exc))
            return None
        self.tx += sent
        if sent:
            self.last_active = self.loop.now
        return sent

    # -- called by protocols --------------------------------------------------------------
    def write(self, data: bytes | memoryview) -> None:
        """Send ``data``: at once as far as the kernel takes it, the rest when writable (copied:
        the caller may reuse ``data`` afterwards)."""
        if self.closed or self.closing is not None:
            return
        if self.outbuf:
            self.outbuf += data
        else:
            sent = self._send(data)
            if sent is None or sent == len(data):
                return
            self.outbuf += memoryview(data)[sent:]
        self.update_mask()
        self.account()

    def close_when_flushed(self, reason: str) -> None:
        """Send what is buffered, then close (lingering), logging ``reason``."""
        if self.closed or self.closing is not None:
            return
        self.closing = reason
        if self.outbuf:
            self.update_mask()
        else:
            self._finish()

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.forget(self)
        self.sock.close()
        self.outbuf = bytearray()
        level = logging.DEBUG if self.quiet else logging.INFO
        log.log(level, "%s conn=%d closed peer=%s reason=%s rx=%d tx=%d after %.3fs",
                self.protocol.name, self.conn_id, endpoint(self.peer), reason, self.rx, self.tx,
                self.loop.now - self.opened)

    def abort(self, reason: str, farewell: bytes = b"") -> None:
        """Free this connection's buffers at once, try to send ``farewell`` (without waiting),
        and close."""
        self.outbuf = bytearray()
        self.protocol.release()
        if farewell:
            with contextlib.suppress(OSError):
                self.sock.send(farewell)
        self.close(reason)

    # -- bookkeeping the loop reads -------------------------------------------------------
    def account(self) -> None:
        """Count what this connection holds against the loop's memory budget."""
        held = len(self.outbuf) + self.protocol.buffered_bytes()
        grew = held - self.held
        if grew:
            self.held = held
            self.loop.buffered += grew
            if grew > 0 and self.loop.buffered > self.loop.budget:
                self.loop.over_budget = True

    def reading_paused_s(self, now: float) -> float:
        """How long reading has been paused for back-pressure, in all, up to ``now``."""
        if self.paused_since is None:
            return self.paused_total
        return self.paused_total + now - self.paused_since

    def linger_expired(self, now: float) -> bool:
        """Is this connection in its lingering close? Closes it once LINGER_S is up."""
        if self.draining_since is None:
            return False
        if now - self.draining_since >= LINGER_S:
            self.close(self.closing or "closed")
        return True

    # -- internals --------------------------------------------------------------------------
    def _finish(self) -> None:
        """Everything is sent and we are closing: half-close, then wait briefly for the FIN."""
        if self.read_eof:
            self.close(self.closing or "closed")
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(self.closing or "closed")
            return
        self.draining_since = self.loop.now
        self._set_mask(selectors.EVENT_READ)

    def update_mask(self) -> None:
        """Wait for what we need next: to write what is buffered, to read unless we pause for
        back-pressure or the peer is done; close when neither and no work is scheduled."""
        want = selectors.EVENT_WRITE if self.outbuf else 0
        if (not self.read_eof and self.closing is None
                and len(self.outbuf) < self.write_buffer_bytes):
            want |= selectors.EVENT_READ
        if want == 0 and not self.pending:  # the peer is done and so are we
            self.close(self.closing or "peer closed")
        else:
            self._set_mask(want)

    def _set_mask(self, want: int) -> None:
        if want != self.mask:
            selector = self.loop.selector
            if not want:  # nothing to wait for until our scheduled work says otherwise
                selector.unregister(self.sock)
            elif not self.mask:
                selector.register(self.sock, want, self)
            else:
                selector.modify(self.sock, want, self)
            self.mask = want
            # Paused for back-pressure: protocol deadlines do not run meanwhile.
            paused = not want & selectors.EVENT_READ and self.closing is None and not self.read_eof
            if paused and self.paused_since is None:
                self.paused_since = self.loop.now
            elif not paused and self.paused_since is not None:
                self.paused_total += self.loop.now - self.paused_since
                self.paused_since = None
