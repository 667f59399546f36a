"""The event loop: one thread, one epoll (``selectors``) loop, every connection and listener.

Concurrency model: a single thread running a selectors (epoll) loop, not a thread per client.
The work per byte here is tiny (echo, a greeting line, a small JSON answer), so the server is bound
by system calls, not by Python. One loop costs a socket and a small object per connection (10,000
idle clients fit in a few MB, where threads would cost a stack each), needs no locks, and keeps
every connection's state in one place, which makes limits, timeouts and a graceful shutdown easy to
get right. 50 clients at once are routine; thousands are fine.

A turn of the loop: select; run each ready socket's ``on_ready``; run the work scheduled with
``call_soon`` (one turn of it); enforce the memory budget; once a second, housekeeping (time
limits, paused listeners, warning summaries). SIGTERM/SIGINT start a graceful shutdown.

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
import logging
import signal
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from lab.netinfo import endpoint, is_loopback, plain_ip

from .config import ServerConfig
from .connection import Connection, Protocol
from .limits import WarningLimiter, memory_budget
from .listeners import DatagramProtocol, TcpListener, UdpListener
from .poller import EVENT_READ, Poller

RECV_BYTES = 256 << 10  # one reusable receive buffer for the whole loop
HOUSEKEEPING_S = 1.0  # how often idle timeouts and deadlines are checked
STOPPING_TICK_S = 0.05  # the same while shutting down, so we exit promptly
HEALTH_SLOTS = 4  # connections only loopback peers (the health check) may take

log = logging.getLogger("server")


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
        self.selector = Poller()
        self.connections: dict[int, Connection] = {}
        self.per_ip: Counter[str] = Counter()  # open connections per peer address
        self.listeners: list[TcpListener | UdpListener] = []
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

    def listen_tcp(self, protocol: type[Protocol], port: int, **settings: Any) -> None:
        """Serve ``protocol`` on a TCP port; ``settings`` are given to each one built."""
        self._listen(TcpListener(self, protocol, port, **settings))

    def listen_udp(self, protocol: type[DatagramProtocol], port: int, **settings: Any) -> None:
        self._listen(UdpListener(self, protocol, port, self.config.max_datagram_bytes,
                                 **settings))

    def _listen(self, listener: TcpListener | UdpListener) -> None:
        self.selector.register(listener.sock, EVENT_READ, listener)
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

    def add(self, conn: Connection) -> None:
        """A connection its listener admitted: serve it."""
        self.connections[conn.conn_id] = conn
        self.per_ip[plain_ip(conn.peer[0])] += 1
        self.selector.register(conn.sock, EVENT_READ, conn)
        log.log(logging.DEBUG if conn.quiet else logging.INFO, "%s conn=%d open peer=%s",
                conn.protocol.name, conn.conn_id, endpoint(conn.peer))
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
        self.selector.register(waker_r, EVENT_READ, _Waker(waker_r))
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
            for handler, mask in events:
                try:
                    handler.on_ready(mask)
                except Exception as exc:  # a bug: contained to its connection or listener
                    self.contain(handler, "on_ready", exc)
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
        udp = [listener for listener in self.listeners if isinstance(listener, UdpListener)]
        stats = [listener.protocol.stats() for listener in udp]
        dropped: Counter[str] = sum((s.get("dropped", Counter()) for s in stats), Counter())
        return (f"{self.conn_ids} connections served, {sum(self.refused.values())} refused"
                f"{_counts(self.refused)}, {sum(self.closed_for.values())} closed by limits"
                f"{_counts(self.closed_for)}, {self.internal_errors} internal errors; "
                f"{sum(s.get('echoed', 0) for s in stats)} datagrams echoed, "
                f"{sum(dropped.values())} dropped{_counts(dropped)}, "
                f"{sum(u.send_failed for u in udp)} could not be sent")

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signal_received = signum

    def _housekeeping(self) -> None:
        now, config = self.now, self.config
        for until, listener in list(self._paused):
            if now >= until:
                self._paused.remove((until, listener))
                self.selector.register(listener.sock, EVENT_READ, listener)
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
