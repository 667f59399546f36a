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

What a peer can make the server spend is bounded (see the README's table of limits):
- admission: ``max_connections`` in all, of which ``HEALTH_SLOTS`` only for loopback (the health
  check still gets in when the server is full), and ``max_connections_per_ip`` per peer address;
- time: a first byte within ``first_byte_timeout_s``, no silence longer than ``idle_timeout_s``,
  no connection older than ``max_lifetime_s`` (closed between exchanges), and the protocol's own
  deadlines (``check_deadline``);
- memory: every connection's buffered bytes count against ``memory_budget``; past it, the
  connections holding the most are closed first;
- a bug: an exception from one connection's callback is logged once with its id and closes that
  connection; the loop goes on (asyncio's ``call_exception_handler`` is the model).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import selectors
import signal
import socket
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable

from lab.netinfo import endpoint, is_loopback, plain_ip

from .config import ServerConfig
from .limits import SourceBuckets, WarningLimiter, memory_budget

RECV_BYTES = 256 << 10  # one reusable receive buffer for the whole loop
ACCEPT_BATCH = 64  # accepts per readiness event, so a burst of clients is taken in one go
UDP_BATCH = 64  # datagrams per readiness event
LINGER_S = 2.0  # after our half-close, how long we wait for the peer's FIN before closing
HOUSEKEEPING_S = 1.0  # how often idle timeouts and deadlines are checked
STOPPING_TICK_S = 0.05  # the same while shutting down, so we exit promptly
PAUSE_ON_EMFILE_S = 0.5  # out of file descriptors: stop accepting for a moment
HEALTH_SLOTS = 4  # connections only loopback peers (the health check) may take

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

    def data_received(self, data: bytes) -> None:
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
    )

    def __init__(self, loop: EventLoop, sock: socket.socket, peer: tuple, listener: TcpListener,
                 conn_id: int) -> None:
        self.loop = loop
        self.sock = sock
        self.peer = peer
        self.local = sock.getsockname()
        self.conn_id = conn_id
        self.held = 0  # bytes buffered for this connection, as counted in loop.buffered
        self.pending = 0  # callbacks scheduled with call_soon and not yet run
        self.paused_since: float | None = None  # reading paused for back-pressure since
        self.paused_total = 0.0
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
        try:
            sent = self.sock.send(self.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(reason_of(exc))
            return
        if sent == len(self.outbuf):
            self.outbuf = bytearray()  # give the memory back, not just the bytes
        else:
            del self.outbuf[:sent]
        self.tx += sent
        self.last_active = self.loop.now
        self.account()
        if not self.outbuf and self.closing is not None:
            self._finish()
        else:
            self.update_mask()

    # -- called by protocols --------------------------------------------------------------
    def write(self, data: bytes | memoryview) -> None:
        """Send ``data``: at once as far as the kernel takes it, the rest when writable (copied:
        the caller may reuse ``data`` afterwards)."""
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
        self.update_mask()
        self.account()

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the loop's next turn (a protocol with more work than one turn
        should take does the rest there, so other connections get their turn in between)."""
        self.pending += 1
        self.loop.ready.append((self, callback))

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

    def abort(self, reason: str, farewell: bytes = b"") -> None:
        """Free this connection's buffers at once, try to send ``farewell`` (without waiting),
        and close."""
        self.outbuf = bytearray()
        self.protocol.release()
        if farewell:
            with contextlib.suppress(OSError):
                self.sock.send(farewell)
        self.close(reason)

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
        want = selectors.EVENT_WRITE if self.outbuf else 0
        if (not self.read_eof and self.closing is None
                and len(self.outbuf) < self.loop.config.write_buffer_bytes):
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


class TcpListener:
    """A dual-stack listening socket whose peers get ``protocol_factory(conn)``."""

    def __init__(self, loop: EventLoop, protocol_factory: Callable[[Connection], Protocol],
                 port: int) -> None:
        self.loop = loop
        self.protocol_factory = protocol_factory
        self.name = getattr(protocol_factory, "name", "tcp")
        self.refusal = getattr(protocol_factory, "refusal", b"")
        self.sock = _listening_socket(loop.config, socket.SOCK_STREAM, port)

    def on_ready(self, mask: int) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.loop.warnings.warn(
                        "cannot-accept", self.loop.now, "%s cannot accept: %s; pausing accepts "
                        "for %.1fs", self.name, exc.strerror, PAUSE_ON_EMFILE_S)
                    self.loop.pause_listener(self, PAUSE_ON_EMFILE_S)
                return  # anything else (e.g. the peer gave up before accept) is not ours to fix
            self.loop.accept(sock, peer, self)

    def describe(self) -> str:
        return f"{self.name} on {endpoint(self.sock.getsockname())}/tcp"


class UdpEchoListener:
    """Echoes each datagram to its sender, unless it must not (each drop is counted):

    - oversized (over ``max_datagram_bytes``);
    - from a source that cannot want an echo and may be another echo service, which would
      ping-pong with us forever: a port below 1024 (as BSD inetd's echo does), our own echo
      port (ourselves, or another lab server), or a broadcast, multicast or unspecified address;
    - over the source's rate (``udp_rate_per_source``), so we cannot be used as a reflector.
    """

    name = "udp-echo"
    SEEN_PEERS_MAX = 1024  # new peers are logged once; remember this many

    def __init__(self, loop: EventLoop, port: int) -> None:
        self.loop = loop
        self.max_bytes = loop.config.max_datagram_bytes
        self.sock = _listening_socket(loop.config, socket.SOCK_DGRAM, port)
        self.port = self.sock.getsockname()[1]
        self.buffer = bytearray(self.max_bytes + 1)
        self.view = memoryview(self.buffer)
        self.seen: OrderedDict[tuple, None] = OrderedDict()
        self.verdicts: OrderedDict[str, str | None] = OrderedDict()  # source ip -> why refused
        self.buckets = SourceBuckets(loop.config.udp_rate_per_source)
        self.echoed = self.send_failed = 0
        self.dropped: Counter[str] = Counter()

    def on_ready(self, mask: int) -> None:
        sock, view, now = self.sock, self.view, self.loop.now
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
            why = self._refuse(peer, size, now)
            if why is not None:
                self.dropped[why] += 1
                self.loop.warnings.warn(f"udp-echo drop ({why})", now,
                                        "udp-echo dropped a datagram from peer=%s (%s; %d so "
                                        "far)", endpoint(peer), why, self.dropped[why])
                continue
            try:
                sock.sendto(view[:size], peer)
                self.echoed += 1
            except OSError as exc:  # send buffer full, or the peer's route is gone
                self.send_failed += 1
                self.loop.warnings.warn("udp-echo send", now, "udp-echo could not echo to "
                                        "peer=%s: %s (%d so far)", endpoint(peer),
                                        exc.strerror, self.send_failed)

    def _refuse(self, peer: tuple, size: int, now: float) -> str | None:
        if size > self.max_bytes:
            return f"over {self.max_bytes} bytes"
        port = peer[1]
        if port < 1024:
            return "source port below 1024"
        if port == self.port:
            return "source is an echo port (ours or another echo service's)"
        ip = peer[0]
        verdict = self.verdicts.get(ip, _UNKNOWN)
        if verdict is _UNKNOWN:
            verdict = self.verdicts[ip] = _bad_source(ip)
            if len(self.verdicts) > self.SEEN_PEERS_MAX:
                self.verdicts.popitem(last=False)
        if verdict is not None:
            return verdict
        if not self.buckets.allow(ip, now):
            return "over the rate per source"
        return None

    def _note_peer(self, peer: tuple, size: int) -> None:
        self.seen[peer] = None
        if len(self.seen) > self.SEEN_PEERS_MAX:
            self.seen.popitem(last=False)
        if not is_loopback(peer[0]):
            log.info("udp-echo first datagram from peer=%s (%d bytes)", endpoint(peer), size)

    def describe(self) -> str:
        return f"{self.name} on {endpoint(self.sock.getsockname())}/udp"


_UNKNOWN = object()


def _bad_source(ip: str) -> str | None:
    """Why no echo may go to this address (one that can only be a forgery), or None."""
    try:
        addr = ipaddress.ip_address(plain_ip(ip))
    except ValueError:
        return "unparsable source address"
    if addr.is_multicast or addr.is_unspecified or str(addr) == "255.255.255.255":
        return "broadcast, multicast or unspecified source"
    return None


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
        self.per_ip: Counter[str] = Counter()  # open connections per peer address
        self.listeners: list[TcpListener | UdpEchoListener] = []
        self.now = time.monotonic()
        self.conn_ids = 0
        self.refused: Counter[str] = Counter()  # why peers were turned away
        self.closed_for: Counter[str] = Counter()  # limits that closed connections
        self.internal_errors = 0
        self.budget = memory_budget(config.memory_budget_bytes)
        self.buffered = 0  # bytes held by all connections (their ``held``, summed)
        self.over_budget = False
        self.recv_buffer = bytearray(RECV_BYTES)
        self.recv_view = memoryview(self.recv_buffer)
        self.warnings = WarningLimiter(log)
        self.signal_received: int | None = None
        self.stop_deadline: float | None = None
        self._paused: list[tuple[float, TcpListener]] = []
        self.ready: deque[tuple[Connection, Callable[[], None]]] = deque()  # call_soon's

    def listen_tcp(self, protocol_factory: Callable[[Connection], Protocol], port: int) -> None:
        listener = TcpListener(self, protocol_factory, port)
        self.selector.register(listener.sock, selectors.EVENT_READ, listener)
        self.listeners.append(listener)

    def listen_udp_echo(self, port: int) -> None:
        listener = UdpEchoListener(self, port)
        self.selector.register(listener.sock, selectors.EVENT_READ, listener)
        self.listeners.append(listener)

    # -- admission ----------------------------------------------------------------------------
    def admission(self, ip: str) -> str | None:
        """Why a peer at ``ip`` may not connect now, or None. Loopback peers (the health check)
        may use the last HEALTH_SLOTS slots and have no per-address cap."""
        config, count = self.config, len(self.connections)
        if is_loopback(ip):
            return "at capacity" if count >= config.max_connections else None
        if count >= config.max_connections - HEALTH_SLOTS:
            return "at capacity"
        if config.max_connections_per_ip and self.per_ip[ip] >= config.max_connections_per_ip:
            return f"over {config.max_connections_per_ip} connections from one address"
        return None

    def accept(self, sock: socket.socket, peer: tuple, listener: TcpListener) -> None:
        sock.setblocking(False)
        ip = plain_ip(peer[0])
        refusal = self.admission(ip)
        if refusal is not None:
            self.refused[refusal] += 1
            with contextlib.suppress(OSError):
                sock.send(listener.refusal)
            sock.close()
            self.warnings.warn(f"refused ({refusal})", self.now,
                               "%s refused peer=%s: %s (%d connections; %d refused so far)",
                               listener.name, endpoint(peer), refusal, len(self.connections),
                               sum(self.refused.values()))
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.config.keepalive_idle_s:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, self.config.keepalive_idle_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        self.conn_ids += 1
        try:
            conn = Connection(self, sock, peer, listener, self.conn_ids)
        except Exception as exc:  # the protocol's constructor: a bug, not the peer's doing
            self.contain(listener, f"building a protocol for peer={endpoint(peer)}", exc)
            sock.close()
            return
        self.connections[conn.conn_id] = conn
        self.per_ip[ip] += 1
        self.selector.register(sock, selectors.EVENT_READ, conn)
        log.log(logging.DEBUG if conn.quiet else logging.INFO, "%s conn=%d open peer=%s",
                listener.name, conn.conn_id, endpoint(peer))
        self.guarded(conn, conn.protocol.connection_made)

    def forget(self, conn: Connection) -> None:
        if conn.mask:
            self.selector.unregister(conn.sock)
        del self.connections[conn.conn_id]
        ip = plain_ip(conn.peer[0])
        self.per_ip[ip] -= 1
        if not self.per_ip[ip]:
            del self.per_ip[ip]
        self.buffered -= conn.held
        conn.held = 0

    def pause_listener(self, listener: TcpListener, seconds: float) -> None:
        self.selector.unregister(listener.sock)
        self._paused.append((self.now + seconds, listener))

    # -- a bug in one connection stays in that connection -------------------------------------
    def guarded(self, target: object, call: Callable, *args: object) -> None:
        """Run ``call(*args)`` for ``target`` (a connection or a listener); see ``contain``."""
        try:
            call(*args)
        except Exception as exc:
            self.contain(target, getattr(call, "__name__", "a callback"), exc)

    def contain(self, target: object, doing: str, exc: Exception) -> None:
        """An exception from a callback is a bug: log it once with a traceback, close the
        connection it came from (a listener just goes on), and keep serving the rest."""
        self.internal_errors += 1
        if isinstance(target, Connection):
            what = f"{target.protocol.name} conn={target.conn_id} peer={endpoint(target.peer)}"
        else:
            what = getattr(target, "name", type(target).__name__)
        log.error("internal error in %s (%s): %s: %s; closing it, serving the rest", what, doing,
                  type(exc).__name__, exc, exc_info=exc)
        if isinstance(target, Connection) and not target.closed:
            try:
                target.abort("internal error")
            except Exception:  # the protocol's release() failed too: just close the socket
                if not target.closed:
                    target.closed = True
                    self.forget(target)
                    target.sock.close()

    # -- memory budget --------------------------------------------------------------------------
    def enforce_budget(self) -> None:
        """Over the budget: close the connections holding the most until back within it."""
        self.over_budget = False
        if self.buffered <= self.budget:
            return
        for conn in sorted(self.connections.values(), key=lambda c: c.held, reverse=True):
            if self.buffered <= self.budget or not conn.held:
                break
            self.closed_for["memory budget"] += 1
            log.warning("%s conn=%d peer=%s holds %d bytes; %d bytes buffered in all are over "
                        "the memory budget of %d: closing it", conn.protocol.name, conn.conn_id,
                        endpoint(conn.peer), conn.held, self.buffered, self.budget)
            self.guarded(conn, conn.abort, "memory budget", conn.protocol.goodbye("memory budget"))

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
            if self.ready:
                timeout = 0.0
            elif self.stop_deadline is not None:
                timeout = STOPPING_TICK_S
            else:  # wake for housekeeping on its own schedule, not only when bytes arrive
                timeout = max(0.0, next_housekeeping - self.now)
            events = select(timeout)
            self.now = time.monotonic()
            for key, mask in events:
                try:
                    key.data.on_ready(mask)
                except Exception as exc:  # a bug: contained to its connection or listener
                    self.contain(key.data, "on_ready", exc)
            if self.ready:
                self._run_ready()
            if self.over_budget:
                self.enforce_budget()
            if self.signal_received is not None and self.stop_deadline is None:
                self._begin_shutdown()
            if self.stop_deadline is not None:
                self._shutdown_step()
                if not self.connections or self.now >= self.stop_deadline:
                    break
            elif self.now >= next_housekeeping:
                self._housekeeping()
                next_housekeeping = max(next_housekeeping + HOUSEKEEPING_S, self.now + 0.1)
        for conn in list(self.connections.values()):
            conn.close("server shutdown deadline")
        self.warnings.flush(self.now, force=True)
        log.info("stopped: %s", self.summary())
        return 0

    def _run_ready(self) -> None:
        """One turn of the work scheduled with call_soon (what is scheduled now waits for the
        next turn, after the next select)."""
        for _ in range(len(self.ready)):
            conn, callback = self.ready.popleft()
            conn.pending -= 1
            if not conn.closed:
                self.guarded(conn, callback)
            if not conn.closed:
                conn.account()
                if not conn.pending and not conn.mask:
                    conn.update_mask()  # the work is done: wait for the peer, or close

    def summary(self) -> str:
        udp = [listener for listener in self.listeners if isinstance(listener, UdpEchoListener)]
        dropped: Counter[str] = sum((u.dropped for u in udp), Counter())
        return (f"{self.conn_ids} connections served, {sum(self.refused.values())} refused"
                f"{_counts(self.refused)}, {sum(self.closed_for.values())} closed by limits"
                f"{_counts(self.closed_for)}, {self.internal_errors} internal errors; "
                f"{sum(u.echoed for u in udp)} datagrams echoed, {sum(dropped.values())} dropped"
                f"{_counts(dropped)}, {sum(u.send_failed for u in udp)} could not be sent")

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signal_received = signum

    def _housekeeping(self) -> None:
        now, config = self.now, self.config
        for until, listener in list(self._paused):
            if now >= until:
                self._paused.remove((until, listener))
                self.selector.register(listener.sock, selectors.EVENT_READ, listener)
        for conn in list(self.connections.values()):
            if not conn.closed and not conn.linger_expired(now):
                self.guarded(conn, self._check, conn, now, config)
        self.warnings.flush(now)

    def _check(self, conn: Connection, now: float, config: ServerConfig) -> None:
        """The time limits of one connection (the protocol's own deadlines last)."""
        age = now - conn.opened
        limit = None
        if config.idle_timeout_s and now - conn.last_active >= config.idle_timeout_s:
            # No byte moved either way: a silent peer, or one that stopped reading (or
            # vanished) while we still have bytes for it.
            limit = f"idle for {config.idle_timeout_s:g}s" + (
                f" with {len(conn.outbuf)} bytes unsent" if conn.outbuf else "")
        elif (config.first_byte_timeout_s and not conn.rx and not conn.read_eof
              and not conn.protocol.speaks_first and age >= config.first_byte_timeout_s):
            limit = f"no data within {config.first_byte_timeout_s:g}s of connecting"
        elif (config.max_lifetime_s and age >= config.max_lifetime_s and conn.closing is None
              and (conn.protocol.between_exchanges(now)
                   or age >= config.max_lifetime_s + config.frame_deadline_s)):
            # Between exchanges, or (a peer that never pauses) a frame deadline past it.
            limit = f"open for {config.max_lifetime_s:g}s (max lifetime)"
        if limit is None:
            conn.protocol.check_deadline(now)
            return
        self.closed_for[limit.split(" (")[0].split(" with ")[0]] += 1
        conn.close(limit)

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
            if conn.closed or conn.linger_expired(now):
                continue
            if conn.closing is None and not conn.outbuf and conn.protocol.between_exchanges(now):
                # Between exchanges nothing of ours is unread, so a plain close (FIN) is safe and
                # spares the linger: the peer sees end-of-stream at once.
                conn.close("server shutting down")


def _counts(counter: Counter[str]) -> str:
    if not counter:
        return ""
    return " (" + ", ".join(f"{why}: {n}" for why, n in counter.most_common()) + ")"
