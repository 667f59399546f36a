"""The socket layer: one thread, one ``selectors`` loop, a ``Connection`` per TCP peer.

Concurrency model: a single thread running a selectors (epoll) loop, not a thread per client.
The work per byte here is tiny (echo, a greeting line, a small JSON answer), so the server is bound
by system calls, not by Python. One loop costs a socket and a small object per connection (10,000
idle clients fit in a few MB, where threads would cost a stack each), needs no locks, and keeps
every connection's state in one place, which makes limits, timeouts and a graceful shutdown easy to
get right. 50 clients at once are routine; thousands are fine.

Flow::

    listening socket --accept--> Connection(sock) + Protocol     selector key.data = the object
    readable -> sock.recv -> protocol.data_received(bytes) -> conn.write(reply)
    conn.write -> sent at once; what the kernel does not take waits in conn.outbuf
    writable -> flush outbuf.  outbuf >= write_buffer_bytes pauses reading (back-pressure: a peer
                that never reads cannot make us buffer without bound)
    close_when_flushed -> flush, half-close, drain the peer briefly, close (a lingering close, so
                an error reply is not destroyed by a reset)

Protocols (``protocols.py``, ``app.py``) never touch sockets: they receive bytes and call
``conn.write`` and ``conn.close_when_flushed``. A peer that goes away (reset, broken pipe) is a
normal event: one log line, no traceback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Callable

from lab.netinfo import endpoint, is_loopback

from .config import ServerConfig

RECV_BYTES = 256 << 10
ACCEPT_BATCH = 64  # accepts per readiness event, so a burst of clients is taken in one go
UDP_BATCH = 64  # datagrams per readiness event
LINGER_S = 2.0  # after our half-close, how long we wait for the peer's FIN before closing
HOUSEKEEPING_S = 1.0  # how often idle timeouts and deadlines are checked
STOPPING_TICK_S = 0.05  # the same while shutting down, so we exit promptly
PAUSE_ON_EMFILE_S = 0.5  # out of file descriptors: stop accepting for a moment

log = logging.getLogger("server")


class Protocol:
    """One connection's application logic. Subclass and override the hooks you need.

    Hooks: ``connection_made()``, ``data_received(data)``, ``eof_received()``,
    ``between_exchanges(now)`` (may a shutdown close us now?), ``check_deadline(now)`` (called
    by housekeeping; may close the connection). ``refusal`` is sent to a peer turned away at
    capacity. ``name`` labels the log lines.
    """

    name = "tcp"
    refusal = b""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def connection_made(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    def eof_received(self) -> None:
        self.conn.close_when_flushed("peer closed")

    def between_exchanges(self, now: float) -> bool:
        return True

    def check_deadline(self, now: float) -> None:
        pass


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
        "last_active",
        "last_rx",
        "listener",
        "local",
        "loop",
        "mask",
        "opened",
        "outbuf",
        "peer",
        "protocol",
        "quiet",
        "read_eof",
        "rx",
        "sock",
        "tx",
    )

    def __init__(self, loop: EventLoop, sock: socket.socket, peer: tuple, listener: TcpListener,
                 conn_id: int) -> None:
        self.loop = loop
        self.sock = sock
        self.peer = peer
        self.local = sock.getsockname()
        self.listener = listener
        self.conn_id = conn_id
        self.outbuf = bytearray()
        self.mask = selectors.EVENT_READ
        self.rx = self.tx = 0
        self.opened = self.last_rx = self.last_active = loop.now
        self.read_eof = False
        self.closing: str | None = None  # set by close_when_flushed: the reason we will close
        self.draining_since: float | None = None
        self.closed = False
        self.quiet = is_loopback(peer[0])  # health probes come from loopback: log them at DEBUG
        self.protocol: Protocol = listener.protocol_factory(self)

    # -- called by the loop -------------------------------------------------------------
    def on_ready(self, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            self._on_readable()
        if mask & selectors.EVENT_WRITE and not self.closed:
            self._on_writable()

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(reason_of(exc))
            return
        if self.draining_since is not None:  # lingering close: discard until the peer's FIN
            if not data:
                self.close(self.closing or "closed")
            return
        if not data:
            self.read_eof = True
            self.protocol.eof_received()  # first: it may still answer (e.g. "truncated")
            if not self.closed and self.closing is None:
                self._update_mask()
            return
        self.rx += len(data)
        self.last_rx = self.last_active = self.loop.now
        self.protocol.data_received(data)

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(reason_of(exc))
            return
        del self.outbuf[:sent]
        self.tx += sent
        self.last_active = self.loop.now
        if not self.outbuf and self.closing is not None:
            self._finish()
        else:
            self._update_mask()

    # -- called by protocols --------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Send ``data``: at once as far as the kernel takes it, the rest when writable."""
        if self.closed or self.closing is not None:
            return
        if not self.outbuf:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.close(reason_of(exc))
                return
            self.tx += sent
            if sent == len(data):
                return
            self.outbuf += memoryview(data)[sent:]
        else:
            self.outbuf += data
        self._update_mask()

    def close_when_flushed(self, reason: str) -> None:
        """Send what is buffered, then close (lingering), logging ``reason``."""
        if self.closed or self.closing is not None:
            return
        self.closing = reason
        if self.outbuf:
            self._update_mask()
        else:
            self._finish()

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.forget(self)
        self.sock.close()
        level = logging.DEBUG if self.quiet else logging.INFO
        log.log(level, "%s conn=%d closed peer=%s reason=%s rx=%d tx=%d after %.3fs",
                self.protocol.name, self.conn_id, endpoint(self.peer), reason, self.rx, self.tx,
                self.loop.now - self.opened)

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

    def _update_mask(self) -> None:
        want = selectors.EVENT_WRITE if self.outbuf else 0
        if (not self.read_eof and self.closing is None
                and len(self.outbuf) < self.loop.config.write_buffer_bytes):
            want |= selectors.EVENT_READ
        if want == 0:  # peer finished sending and we have nothing left to say
            self.close(self.closing or "peer closed")
        else:
            self._set_mask(want)

    def _set_mask(self, want: int) -> None:
        if want != self.mask:
            self.loop.selector.modify(self.sock, want, self)
            self.mask = want


class TcpListener:
    """A dual-stack listening socket whose peers get ``protocol_factory(conn)``."""

    def __init__(self, loop: EventLoop, protocol_factory: Callable[[Connection], Protocol],
                 port: int) -> None:
        self.loop = loop
        self.protocol_factory = protocol_factory
        self.name = getattr(protocol_factory, "name", "tcp")
        self.sock = _listening_socket(loop.config, socket.SOCK_STREAM, port)
        self.paused_until = 0.0

    def on_ready(self, mask: int) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("%s cannot accept: %s; pausing accepts for %.1fs",
                                self.name, exc.strerror, PAUSE_ON_EMFILE_S)
                    self.loop.pause_listener(self, PAUSE_ON_EMFILE_S)
                return  # anything else (e.g. the peer gave up before accept) is not ours to fix
            self.loop.accept(sock, peer, self)

    def describe(self) -> str:
        return f"{self.name} on {endpoint(self.sock.getsockname())}/tcp"


class UdpEchoListener:
    """Echoes each datagram to its sender. Oversized datagrams are dropped and logged."""

    name = "udp-echo"
    SEEN_PEERS_MAX = 1024  # new peers are logged once; remember this many

    def __init__(self, loop: EventLoop, port: int) -> None:
        self.loop = loop
        self.max_bytes = loop.config.max_datagram_bytes
        self.sock = _listening_socket(loop.config, socket.SOCK_DGRAM, port)
        self.buffer = bytearray(self.max_bytes + 1)
        self.view = memoryview(self.buffer)
        self.seen: OrderedDict[tuple, None] = OrderedDict()
        self.echoed = self.oversized = self.send_failed = 0

    def on_ready(self, mask: int) -> None:
        sock, view = self.sock, self.view
        for _ in range(UDP_BATCH):
            try:
                size, peer = sock.recvfrom_into(self.buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("udp-echo recv failed: %s", exc)
                continue
            if peer not in self.seen:
                self._note_peer(peer, size)
            if size > self.max_bytes:
                self.oversized += 1
                log.warning("udp-echo dropped a datagram over %d bytes from peer=%s (%d dropped)",
                            self.max_bytes, endpoint(peer), self.oversized)
                continue
            try:
                sock.sendto(view[:size], peer)
                self.echoed += 1
            except OSError as exc:  # send buffer full, or the peer's route is gone
                self.send_failed += 1
                if self.send_failed in (1, 10, 100, 1000) or self.send_failed % 10000 == 0:
                    log.warning("udp-echo could not echo to peer=%s: %s (%d so far)",
                                endpoint(peer), exc.strerror, self.send_failed)

    def _note_peer(self, peer: tuple, size: int) -> None:
        self.seen[peer] = None
        if len(self.seen) > self.SEEN_PEERS_MAX:
            self.seen.popitem(last=False)
        if not is_loopback(peer[0]):
            log.info("udp-echo first datagram from peer=%s (%d bytes)", endpoint(peer), size)

    def describe(self) -> str:
        return f"{self.name} on {endpoint(self.sock.getsockname())}/udp"


def _listening_socket(config: ServerConfig, kind: int, port: int) -> socket.socket:
    dual = config.bind in ("::", "") and socket.has_dualstack_ipv6()
    family = socket.AF_INET6 if (dual or ":" in config.bind) else socket.AF_INET
    host = "::" if dual else config.bind
    if kind == socket.SOCK_STREAM:
        sock = socket.create_server((host, port), family=family, backlog=config.backlog,
                                    dualstack_ipv6=dual)
    else:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if dual:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    sock.setblocking(False)
    return sock


class _Waker:
    """The read end of the signal wake-up pipe, so a signal interrupts select() at once."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def on_ready(self, mask: int) -> None:
        try:
            while self.sock.recv(512):
                pass
        except (BlockingIOError, InterruptedError):
            pass


class EventLoop:
    """Owns the selector, the listeners and every connection; runs until SIGTERM or SIGINT."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, Connection] = {}
        self.listeners: list[TcpListener | UdpEchoListener] = []
        self.now = time.monotonic()
        self.conn_ids = 0
        self.refused = 0
        self.signal_received: int | None = None
        self.stop_deadline: float | None = None
        self._paused: list[tuple[float, TcpListener]] = []

    def listen_tcp(self, protocol_factory: Callable[[Connection], Protocol], port: int) -> None:
        listener = TcpListener(self, protocol_factory, port)
        self.selector.register(listener.sock, selectors.EVENT_READ, listener)
        self.listeners.append(listener)

    def listen_udp_echo(self, port: int) -> None:
        listener = UdpEchoListener(self, port)
        self.selector.register(listener.sock, selectors.EVENT_READ, listener)
        self.listeners.append(listener)

    def accept(self, sock: socket.socket, peer: tuple, listener: TcpListener) -> None:
        sock.setblocking(False)
        if len(self.connections) >= self.config.max_connections:
            self.refused += 1
            with contextlib.suppress(OSError):
                sock.send(getattr(listener.protocol_factory, "refusal", b""))
            sock.close()
            log.warning("%s refused peer=%s: at capacity (%d connections; %d refused so far)",
                        listener.name, endpoint(peer), len(self.connections), self.refused)
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.config.keepalive_idle_s:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self.config.keepalive_idle_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        self.conn_ids += 1
        conn = Connection(self, sock, peer, listener, self.conn_ids)
        self.connections[conn.conn_id] = conn
        self.selector.register(sock, selectors.EVENT_READ, conn)
        log.log(logging.DEBUG if conn.quiet else logging.INFO, "%s conn=%d open peer=%s",
                listener.name, conn.conn_id, endpoint(peer))
        conn.protocol.connection_made()

    def forget(self, conn: Connection) -> None:
        self.selector.unregister(conn.sock)
        del self.connections[conn.conn_id]

    def pause_listener(self, listener: TcpListener, seconds: float) -> None:
        self.selector.unregister(listener.sock)
        self._paused.append((self.now + seconds, listener))

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until SIGTERM/SIGINT, then drain in-flight exchanges and return 0."""
        waker_r, waker_w = socket.socketpair()
        waker_r.setblocking(False)
        waker_w.setblocking(False)
        self.selector.register(waker_r, selectors.EVENT_READ, _Waker(waker_r))
        signal.set_wakeup_fd(waker_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

        next_housekeeping = self.now + HOUSEKEEPING_S
        select = self.selector.select
        while True:
            tick = STOPPING_TICK_S if self.stop_deadline is not None else HOUSEKEEPING_S
            events = select(tick)
            self.now = time.monotonic()
            for key, mask in events:
                key.data.on_ready(mask)
            if self.signal_received is not None and self.stop_deadline is None:
                self._begin_shutdown()
            if self.stop_deadline is not None:
                self._shutdown_step()
                if not self.connections or self.now >= self.stop_deadline:
                    break
            elif self.now >= next_housekeeping:
                self._housekeeping()
                next_housekeeping = self.now + HOUSEKEEPING_S
        for conn in list(self.connections.values()):
            conn.close("server shutdown deadline")
        udp = [listener for listener in self.listeners if isinstance(listener, UdpEchoListener)]
        log.info("stopped: %d connections served, %d refused at capacity; %d datagrams echoed, "
                 "%d oversized dropped, %d could not be sent", self.conn_ids, self.refused,
                 sum(u.echoed for u in udp), sum(u.oversized for u in udp),
                 sum(u.send_failed for u in udp))
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signal_received = signum

    def _housekeeping(self) -> None:
        now = self.now
        for until, listener in list(self._paused):
            if now >= until:
                self._paused.remove((until, listener))
                self.selector.register(listener.sock, selectors.EVENT_READ, listener)
        idle_timeout = self.config.idle_timeout_s
        for conn in list(self.connections.values()):
            if conn.linger_expired(now):
                continue
            if idle_timeout and now - conn.last_active >= idle_timeout:
                # No byte moved either way: a silent peer, or one that stopped reading (or
                # vanished) while we still have bytes for it.
                conn.close(f"idle for {idle_timeout:g}s" + (
                    f" with {len(conn.outbuf)} bytes unsent" if conn.outbuf else ""))
            else:
                conn.protocol.check_deadline(now)

    def _begin_shutdown(self) -> None:
        name = signal.Signals(self.signal_received).name
        self.stop_deadline = self.now + self.config.shutdown_grace_s
        self._paused.clear()
        for listener in self.listeners:
            with contextlib.suppress(KeyError):  # paused after EMFILE: already unregistered
                self.selector.unregister(listener.sock)
            listener.sock.close()
        log.info("%s: no longer accepting; %d connection(s) in flight get up to %gs to finish",
                 name, len(self.connections), self.config.shutdown_grace_s)

    def _shutdown_step(self) -> None:
        now = self.now
        for conn in list(self.connections.values()):
            if conn.linger_expired(now):
                continue
            if conn.closing is None and not conn.outbuf and conn.protocol.between_exchanges(now):
                # Between exchanges nothing of ours is unread, so a plain close (FIN) is safe and
                # spares the linger: the peer sees end-of-stream at once.
                conn.close("server shutting down")
