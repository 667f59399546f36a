"""The event loop: one thread, one epoll loop, every connection and listener.

Concurrency model: a single thread running an epoll loop, not a thread per client. The work
per byte here is small (echo, a greeting line, a JSON answer), so the server is bound by system
calls, not by Python. One loop costs a socket and a small object per connection (10,000 idle
clients fit in a few MB, where threads would cost a stack each), needs no locks, and keeps every
connection's state in one place, which makes limits, timeouts and a graceful shutdown easy to
get right.

A turn of the loop::

    poll ──▶ each ready socket's on_ready (reads, writes, accepts: copies and system calls)
         ──▶ the work queue, fairly, for at most TURN_WORK_S (parsing and answering requests)
         ──▶ once a second, housekeeping (time limits, paused listeners, warning summaries)

Every resource a peer can make the server spend is bounded where it is spent, before it is
spent (docs/robustness.md has the table, with the test for each):

- bytes: a connection reads only into the room below its high-water mark, and only after the
  memory budget has room for it (``make_room``: past the budget, the connections holding the
  most are closed first); a reply is charged before it is buffered (``can_hold``);
- CPU: reading and accepting are copies (accepts at most ACCEPT_BATCH a listener a turn, each
  address parsed once); costly work goes through the work queue, served least-served first,
  least recent work first, at most TURN_WORK_S a turn and a slice (``WORK_SLICE_S``) a
  connection at a time, so a fresh request waits for the one request under way, not for every
  busy connection's queue;
- slots: ``max_connections``, of which ``HEALTH_SLOTS`` only for loopback (the health check gets
  in when the server is full), and ``max_connections_per_ip`` per peer (an IPv6 peer is its
  /64, ``ipv6_prefix_bits``);
- time: a first byte within ``first_byte_timeout_s``, no silence longer than ``idle_timeout_s``,
  no connection older than ``max_lifetime_s`` (closed between exchanges), the protocols' own
  deadlines, and ``shutdown_grace_s`` for in-flight exchanges at SIGTERM;
- log lines: connection events and warnings are rate-limited per kind, the rest counted;
- a bug: an exception from one connection's callback is logged once with its id and closes
  that connection; the loop goes on (asyncio's ``call_exception_handler`` is the model).
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import logging
import signal
import socket
import struct
import termios
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from lab.netinfo import Peer

from .base import DatagramProtocol, Protocol
from .config import ServerConfig, high_water
from .limits import WarningLimiter, memory_budget
from .listeners import TcpListener, UdpListener
from .poller import EVENT_READ, Poller
from .transport import RECV_BYTES, FlowLimits, TcpTransport

HOUSEKEEPING_S = 1.0  # how often the connections due for a check are checked
CHECKS_PER_TURN = 2048  # connections checked in one turn, at most (the rest in the next turns)
RECHECK_S = 60.0  # a connection with no deadline at all is still looked at this often
STOPPING_TICK_S = 0.05  # the same while shutting down, so we exit promptly
HEALTH_SLOTS = 4  # connections only loopback peers (the health check) may take
TURN_WORK_S = 0.010  # the most a turn spends on queued work before it polls again
WORK_SLICE_S = 0.002  # one connection's share of that before the next one's turn
WORK_HALF_LIFE_S = 1.0  # how fast a connection's past work time stops counting against it
EVENTS_PER_S = 100  # connection open/close lines a second; more are counted, not written

log = logging.getLogger("server")


class _Waker:
    """The read end of the signal wake-up pipe, so a signal interrupts poll() at once."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def on_ready(self, mask: int) -> None:
        try:
            while self.sock.recv(512):
                pass
        except (BlockingIOError, InterruptedError):
            pass


class EventLoop:
    """Owns the poller, the listeners and every connection; runs until SIGTERM or SIGINT.

    Methods for transports and listeners: ``admission``, ``add``, ``transport_closed``,
    ``set_events``, ``make_room``, ``can_hold``, ``charge``, ``request_work``,
    ``connection_event``, ``guarded``, ``pause_listener``. For ``cli`` and tests:
    ``listen_tcp``, ``listen_udp``, ``run`` (until a signal), ``run_once`` (one turn).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.poller = Poller()
        self.connections: dict[int, TcpTransport] = {}
        self.per_peer: Counter[str] = Counter()  # open connections per Peer.key
        self.listeners: list[TcpListener | UdpListener] = []
        self.now = time.monotonic()
        self.conn_ids = 0
        self.refused: Counter[str] = Counter()  # why peers were turned away
        self.closed_for: Counter[str] = Counter()  # limits that closed connections
        self.internal_errors = 0
        self.bytes_rx = self.bytes_tx = 0  # over every connection, for the stats line
        self.budget = memory_budget(config.memory_budget_bytes)
        self.buffered = 0  # bytes held by all connections (their ``held``, summed)
        self.recv_buffer = bytearray(RECV_BYTES)
        self.recv_view = memoryview(self.recv_buffer)
        self.warnings = WarningLimiter(log)
        self.events = WarningLimiter(log, burst=EVENTS_PER_S, window_s=1.0, noun="event")
        self.flow = FlowLimits(high_water(config), config.write_buffer_bytes)
        self.signal_received: int | None = None
        self.stop_deadline: float | None = None
        self._paused: list[tuple[float, TcpListener]] = []
        self._work: list[tuple[float, int, TcpTransport]] = []  # (recent_work, seq, transport) heap
        self._work_seq = 0
        self._next_housekeeping = self.now + HOUSEKEEPING_S
        self._next_stats = self.now + (config.stats_interval_s or float("inf"))
        # When each connection is next due for a check: buckets of one second (a timing
        # wheel), so that a turn of housekeeping looks at the connections whose deadline may
        # have come, not at every connection. A bucket may hold stale entries (a connection
        # whose check was brought forward): its ``due`` says which entry counts. The buckets
        # hold connection ids, not connections, so that nothing outlives its connection.
        self._due: dict[int, list[int]] = {}
        self._due_keys: list[int] = []  # heap of the buckets' seconds
        # (bucket, connection) due and not checked yet (over the turn's cap)
        self._checks_left: list[tuple[int, int]] = []
        self._waker: tuple[socket.socket, socket.socket] | None = None

    def listen_tcp(self, protocol: Callable[..., Protocol], port: int, **settings: Any) -> None:
        """Serve ``protocol`` on a TCP port; ``settings`` are given to each one built."""
        self._listen(TcpListener(self, protocol, port, **settings))

    def listen_udp(
        self, protocol: Callable[..., DatagramProtocol], port: int, **settings: Any
    ) -> None:
        self._listen(UdpListener(self, protocol, port, self.config.max_datagram_bytes, **settings))

    def _listen(self, listener: TcpListener | UdpListener) -> None:
        self.poller.register(listener.sock, EVENT_READ, listener)
        self.listeners.append(listener)

    # -- admission ----------------------------------------------------------------------------
    def admission(self, peer: Peer) -> str | None:
        """Why ``peer`` may not connect now, or None. Loopback peers (the health check) may use
        the last HEALTH_SLOTS slots and have no per-address cap."""
        config, count = self.config, len(self.connections)
        if peer.loopback:
            return "at capacity" if count >= config.max_connections else None
        if count >= config.max_connections - HEALTH_SLOTS:
            return "at capacity"
        cap = config.max_connections_per_ip
        if cap and self.per_peer[peer.key] >= cap:
            where = "one address" if peer.key == peer.ip else f"one network ({peer.key})"
            return f"over {cap} connections from {where}"
        return None

    def add(self, sock: socket.socket, peer: Peer, protocol: Protocol) -> TcpTransport:
        """A connection its listener admitted: serve it."""
        self.conn_ids += 1
        transport = TcpTransport(self, sock, peer, self.conn_ids, protocol, self.flow)
        self.connections[transport.conn_id] = transport
        self.per_peer[peer.key] += 1
        self.check_by(transport, self._next_check(transport, self.now))
        self.connection_event(
            logging.DEBUG if transport.quiet else logging.INFO,
            "%s conn=%d open peer=%s",
            protocol.name,
            transport.conn_id,
            peer,
            extra={
                "event": "open",
                "listener": protocol.name,
                "conn": transport.conn_id,
                "peer": str(peer),
            },
        )
        self.guarded(transport, protocol.connection_made, transport)
        if not transport.closed:
            transport.account()
            transport.update_mask()
            if transport.mask & EVENT_READ:  # a client's first bytes often come with its
                # handshake: read them now, not a turn later
                self.guarded(transport, transport.on_ready, EVENT_READ)
        return transport

    def transport_closed(self, transport: TcpTransport) -> None:
        """A transport is closing: forget it (and what it held)."""
        if transport.mask:
            self.poller.unregister(transport.sock)
            transport.mask = 0
        del self.connections[transport.conn_id]
        key = transport.peer.key
        self.per_peer[key] -= 1
        if not self.per_peer[key]:
            del self.per_peer[key]
        self.buffered -= transport.held
        transport.held = 0

    def set_events(self, transport: TcpTransport, old: int, new: int) -> None:
        if not new:  # nothing to wait for until our own work says otherwise
            self.poller.unregister(transport.sock)
        elif not old:
            self.poller.register(transport.sock, new, transport)
        else:
            self.poller.modify(transport.sock, new, transport)

    def pause_listener(self, listener: TcpListener, seconds: float) -> None:
        self.poller.unregister(listener.sock)
        self._paused.append((self.now + seconds, listener))

    def connection_event(
        self, level: int, msg: str, *args: object, extra: dict[str, object] | None = None
    ) -> None:
        """An open or close line: at most EVENTS_PER_S a second are written, the rest are
        counted in a summary line (a flood of connections is not a flood of log lines).
        ``extra``: the line's fields for the JSON form (LAB_LOG_FORMAT=json)."""
        if level <= logging.DEBUG:
            log.debug(msg, *args, extra=extra)
        else:
            self.events.warn("connection", self.now, msg, *args, level=level, extra=extra)

    # -- a bug in one connection stays in that connection -------------------------------------
    def guarded(self, target: object, call: Callable[..., Any], *args: object) -> Any:
        """Run ``call(*args)`` for ``target`` (a transport or a listener); see ``contain``."""
        try:
            return call(*args)
        except Exception as exc:
            self.contain(target, getattr(call, "__name__", "a callback"), exc)
            return None

    def contain(self, target: object, doing: str, exc: Exception) -> None:
        """An exception from a callback is a bug: log it once with a traceback, close the
        connection it came from (a listener just goes on), and keep serving the rest."""
        self.internal_errors += 1
        if isinstance(target, TcpTransport):
            what = f"{target.name} conn={target.conn_id} peer={target.peer}"
        else:
            what = getattr(target, "name", type(target).__name__)
        log.error(
            "internal error in %s (%s): %s: %s; closing it, serving the rest",
            what,
            doing,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        if isinstance(target, TcpTransport) and not target.closed:
            target.abort("internal error")

    # -- memory budget --------------------------------------------------------------------------
    def charge(self, delta: int) -> None:
        self.buffered += delta

    def can_hold(self, size: int) -> bool:
        """May ``size`` more bytes be buffered within the budget?"""
        return self.buffered + size <= self.budget

    def make_room(self, reader: TcpTransport, size: int) -> int:
        """Before ``reader`` reads up to ``size`` bytes: how many it may read within the
        budget, closing the connections that hold the most until there is room (0 if
        ``reader`` itself was one of them)."""
        if self.buffered + size <= self.budget:
            return size
        # Near the budget, charge what is really waiting (one more system call), not the most
        # one read could take; at least one byte, to see an end of stream.
        size = max(1, min(size, bytes_waiting(reader.sock)))
        if self.buffered + size <= self.budget:
            return size
        for victim in sorted(self.connections.values(), key=lambda t: t.held, reverse=True):
            if self.buffered + size <= self.budget or not victim.held:
                break
            self.closed_for["memory budget"] += 1
            self.warnings.warn(
                "memory budget",
                self.now,
                "%s conn=%d peer=%s holds %d bytes; %d bytes "
                "buffered in all, and %d more to read, are over the memory budget of %d: "
                "closing it",
                victim.name,
                victim.conn_id,
                victim.peer,
                victim.held,
                self.buffered,
                size,
                self.budget,
            )
            farewell = victim.protocol.goodbye("memory budget") if victim.protocol else b""
            victim.abort("memory budget", farewell)
        if reader.closed:
            return 0
        return max(0, min(size, self.budget - self.buffered))

    # -- the work queue ------------------------------------------------------------------------
    def request_work(self, transport: TcpTransport) -> None:
        """Queue ``transport``'s protocol for ``work``. Its place is the work time it has had
        lately (halving every WORK_HALF_LIFE_S): least recent work first. Connections that keep
        the loop busy take turns among themselves (round-robin), and one with little recent
        work (a fresh request) goes before all of them, so it waits for at most the one
        request under way, not for every busy connection's turn."""
        if transport.work_queued:
            return
        transport.work_queued = True
        self._work_seq += 1
        heapq.heappush(self._work, (self._recent_work(transport), self._work_seq, transport))

    def _recent_work(self, transport: TcpTransport) -> float:
        """``transport``'s work time, decayed to now."""
        if not transport.recent_work:
            return 0.0
        decay: float = 0.5 ** ((self.now - transport.worked_at) / WORK_HALF_LIFE_S)
        return transport.recent_work * decay

    def _run_work(self) -> None:
        """Serve the queue, least-served first, for at most TURN_WORK_S (one unit of work at
        least); whatever is left waits for the next turn, after the next poll."""
        clock = time.perf_counter
        started = clock()
        work = self._work
        served = 0
        while work:
            if served and work[0][2].last_work_s > TURN_WORK_S - (clock() - started):
                return  # the next one took longer than is left of this turn last time: poll first
            _, _, transport = heapq.heappop(work)
            transport.work_queued = False
            if transport.closed or transport.protocol is None:
                continue
            served += 1
            begun = clock()
            more = self.guarded(transport, transport.protocol.work, begun + WORK_SLICE_S)
            ended = clock()
            transport.last_work_s = ended - begun
            transport.recent_work = self._recent_work(transport) + transport.last_work_s
            transport.worked_at = self.now
            if not transport.closed:
                transport.account()
                transport.update_mask()
                if more:
                    self.request_work(transport)
            if ended - started >= TURN_WORK_S:
                return

    # -- the loop ---------------------------------------------------------------------------
    def handle_signals(self) -> None:
        """SIGTERM and SIGINT start a graceful shutdown, and wake the poll at once. Called
        before the listeners are announced, so a signal sent as soon as they are is ours."""
        waker_r, waker_w = socket.socketpair()
        waker_r.setblocking(False)
        waker_w.setblocking(False)
        self.poller.register(waker_r, EVENT_READ, _Waker(waker_r))
        self._waker = (waker_r, waker_w)
        signal.set_wakeup_fd(waker_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT, then drain in-flight exchanges and return 0."""
        if self._waker is None:
            self.handle_signals()
        while self.run_once():
            pass
        for transport in list(self.connections.values()):
            transport.close_now("server shutdown deadline")
        self.warnings.flush(self.now, force=True)
        self.events.flush(self.now, force=True)
        log.info("stopped: %s", self.summary(), extra={"event": "stopped", **self.figures()})
        return 0

    def run_once(self, timeout: float | None = None) -> bool:
        """One turn of the loop; False once a shutdown has finished. ``timeout`` caps the wait
        (tests drive the loop turn by turn)."""
        if self._work or self._checks_left:
            wait = 0.0
        elif self.stop_deadline is not None:
            wait = STOPPING_TICK_S
        else:  # wake for housekeeping on its own schedule, not only when bytes arrive
            wait = max(0.0, self._next_housekeeping - self.now)
        if timeout is not None:
            wait = min(wait, timeout)
        events = self.poller.select(wait)
        self.now = time.monotonic()
        for handler, mask in events:
            try:
                handler.on_ready(mask)
            except Exception as exc:  # a bug: contained to its connection or listener
                self.contain(handler, "on_ready", exc)
        if self._work:
            self._run_work()
        if self.signal_received is not None and self.stop_deadline is None:
            self._begin_shutdown()
        if self.stop_deadline is not None:
            self._shutdown_step()
            return bool(self.connections) and self.now < self.stop_deadline
        if self.now >= self._next_housekeeping:
            self._housekeeping()
            self._next_housekeeping = max(self._next_housekeeping + HOUSEKEEPING_S, self.now + 0.1)
        elif self._checks_left:  # what housekeeping's cap left over
            self._run_checks()
        return True

    def figures(self) -> dict[str, int]:
        """What the stats line and the shutdown summary report."""
        udp = [listener for listener in self.listeners if isinstance(listener, UdpListener)]
        stats = [listener.protocol.stats() for listener in udp]
        return {
            "open": len(self.connections),
            "served": self.conn_ids,
            "refused": sum(self.refused.values()),
            "closed_by_limits": sum(self.closed_for.values()),
            "internal_errors": self.internal_errors,
            "bytes_rx": self.bytes_rx,
            "bytes_tx": self.bytes_tx,
            "datagrams_echoed": sum(s.get("echoed", 0) for s in stats),
            "datagrams_dropped": sum(sum(s.get("dropped", Counter()).values()) for s in stats),
            "budget_used": self.buffered,
            "budget": self.budget,
        }

    def log_stats(self) -> None:
        """One line of the figures (LAB_STATS_INTERVAL_S): connections open, served, refused;
        bytes; datagrams; the memory budget used."""
        figures = self.figures()
        log.info(
            "stats: " + " ".join(f"{key}={value}" for key, value in figures.items()),
            extra={"event": "stats", **figures},
        )

    def summary(self) -> str:
        udp = [listener for listener in self.listeners if isinstance(listener, UdpListener)]
        stats = [listener.protocol.stats() for listener in udp]
        dropped: Counter[str] = sum((s.get("dropped", Counter()) for s in stats), Counter())
        return (
            f"{self.conn_ids} connections served, {sum(self.refused.values())} refused"
            f"{_counts(self.refused)}, {sum(self.closed_for.values())} closed by limits"
            f"{_counts(self.closed_for)}, {self.internal_errors} internal errors; "
            f"{sum(s.get('echoed', 0) for s in stats)} datagrams echoed, "
            f"{sum(dropped.values())} dropped{_counts(dropped)}, "
            f"{sum(u.send_failed for u in udp)} could not be sent"
        )

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signal_received = signum

    # -- time limits: each connection checked when it is due ----------------------------------
    def check_by(self, transport: TcpTransport, when: float) -> None:
        """Make sure ``transport`` is checked at ``when`` or before (a protocol that starts a
        frame asks for its deadline; ``add`` for the first one)."""
        if when >= transport.due:
            return
        transport.due = when
        second = int(when)
        bucket = self._due.get(second)
        if bucket is None:
            bucket = self._due[second] = []
            heapq.heappush(self._due_keys, second)
        bucket.append(transport.conn_id)

    def _next_check(self, transport: TcpTransport, now: float) -> float:
        """The earliest a limit can close ``transport``: its idle, first-byte and lifetime
        deadlines; every second while it is closing or in an exchange (whose protocol has
        deadlines of its own); RECHECK_S at the latest."""
        config, protocol = self.config, transport.protocol
        when = now + RECHECK_S
        if config.idle_timeout_s:
            when = min(when, transport.last_active + config.idle_timeout_s)
        if (
            config.first_byte_timeout_s
            and not transport.rx
            and not transport.read_eof
            and protocol is not None
            and not protocol.speaks_first
        ):
            when = min(when, transport.opened + config.first_byte_timeout_s)
        if config.max_lifetime_s and transport.closing is None:
            when = min(when, transport.opened + config.max_lifetime_s)
        if (
            transport.closing is not None
            or transport.draining_since is not None
            or (protocol is not None and protocol.in_exchange(now))
        ):
            when = min(when, now + HOUSEKEEPING_S)
        return max(when, now + HOUSEKEEPING_S / 2)  # never again within the same second

    def _housekeeping(self) -> None:
        now = self.now
        for until, listener in list(self._paused):
            if now >= until:
                self._paused.remove((until, listener))
                self.poller.register(listener.sock, EVENT_READ, listener)
        keys, due = self._due_keys, self._due
        while keys and keys[0] <= now:
            second = heapq.heappop(keys)
            self._checks_left.extend((second, conn_id) for conn_id in due.pop(second))
        self._run_checks()
        self.warnings.flush(now)
        self.events.flush(now)
        if now >= self._next_stats:
            self._next_stats = now + self.config.stats_interval_s
            self.log_stats()

    def _run_checks(self) -> None:
        """Check the connections that are due, CHECKS_PER_TURN a turn at most: a second in
        which many come due is spread over the next turns, not spent in one."""
        now, config = self.now, self.config
        batch = self._checks_left[-CHECKS_PER_TURN:]
        del self._checks_left[-CHECKS_PER_TURN:]
        connections = self.connections
        for second, conn_id in batch:
            transport = connections.get(conn_id)
            if transport is None or transport.closed or int(transport.due) != second:
                continue  # gone, or a stale entry (its check was moved earlier)
            if transport.due > now:  # later in this second: at the next housekeeping
                when, transport.due = transport.due, float("inf")
                self.check_by(transport, when)
                continue
            transport.due = float("inf")
            if transport.linger_expired(now):
                self.check_by(transport, now + HOUSEKEEPING_S)
                continue
            self.guarded(transport, self._check, transport, now, config)
            if not transport.closed:
                self.check_by(transport, self._next_check(transport, now))

    def _check(self, transport: TcpTransport, now: float, config: ServerConfig) -> None:
        """The time limits of one connection (the protocol's own deadlines last)."""
        protocol = transport.protocol
        assert protocol is not None
        age = now - transport.opened
        limit = None
        if config.idle_timeout_s and now - transport.last_active >= config.idle_timeout_s:
            # No byte moved either way: a silent peer, or one that stopped reading (or
            # vanished) while we still have bytes for it.
            limit = f"idle for {config.idle_timeout_s:g}s" + (
                f" with {len(transport.outbuf)} bytes unsent" if transport.outbuf else ""
            )
        elif (
            config.first_byte_timeout_s
            and not transport.rx
            and not transport.read_eof
            and not protocol.speaks_first
            and age >= config.first_byte_timeout_s
        ):
            limit = f"no data within {config.first_byte_timeout_s:g}s of connecting"
        elif (
            config.max_lifetime_s
            and age >= config.max_lifetime_s
            and transport.closing is None
            and (
                not protocol.in_exchange(now)
                or age >= config.max_lifetime_s + config.frame_deadline_s
            )
        ):
            # Between exchanges, or (a peer that never pauses) a frame deadline past it.
            limit = f"open for {config.max_lifetime_s:g}s (max lifetime)"
        if limit is None:
            protocol.check_deadline(now)
            return
        self.closed_for[limit.split(" (")[0].split(" with ")[0]] += 1
        transport.close_now(limit)

    def _begin_shutdown(self) -> None:
        assert self.signal_received is not None
        name = signal.Signals(self.signal_received).name
        self.stop_deadline = self.now + self.config.shutdown_grace_s
        self._paused.clear()
        for listener in self.listeners:
            with contextlib.suppress(KeyError):  # paused after EMFILE: already unregistered
                self.poller.unregister(listener.sock)
            listener.sock.close()
        in_flight = sum(1 for t in self.connections.values() if self._in_flight(t))
        log.info(
            "%s: no longer accepting; %d connection(s) in flight get up to %gs to finish, "
            "%d idle one(s) are closed now",
            name,
            in_flight,
            self.config.shutdown_grace_s,
            len(self.connections) - in_flight,
            extra={
                "event": "draining",
                "signal": name,
                "in_flight": in_flight,
                "idle": len(self.connections) - in_flight,
            },
        )

    def _in_flight(self, transport: TcpTransport) -> bool:
        """Is an exchange under way on this connection: anything of ours unsent, a close in
        progress, or the protocol says so (a frame partly received, an echo stream active)?"""
        protocol = transport.protocol
        return bool(
            transport.outbuf
            or transport.closing is not None
            or transport.work_queued
            or (protocol is not None and protocol.in_exchange(self.now))
        )

    def _shutdown_step(self) -> None:
        now = self.now
        for transport in list(self.connections.values()):
            if transport.closed or transport.linger_expired(now):
                continue
            if not self._in_flight(transport):
                # Between exchanges nothing of ours is unread, so a plain close (FIN) is safe and
                # spares the linger: the peer sees end-of-stream at once.
                transport.close_now("server shutting down")


def bytes_waiting(sock: socket.socket) -> int:
    """How many bytes the kernel holds for us to read on ``sock`` (0 if it cannot say)."""
    try:
        waiting: int = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]
        return waiting
    except OSError:
        return 0


def _counts(counter: Counter[str]) -> str:
    if not counter:
        return ""
    return " (" + ", ".join(f"{why}: {n}" for why, n in counter.most_common()) + ")"
