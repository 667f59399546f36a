"""Many connections at once in one thread: a selectors loop drives ``Session`` objects.

A session has bytes to send (``outgoing``), says whether to half-close once they are sent, and
consumes what comes back (``received``, ``ended``) until it is ``done``. ``drive`` sends and
receives on every session at the same time, so neither side's buffers can deadlock and the
number of clients costs no threads (the client container's pids limit stays small).
"""

from __future__ import annotations

import hashlib
import selectors
import socket
import time
from collections.abc import Sequence

from lab.appconn import NEED_DATA, ClientConnection, Closed, ErrorReply, Reply, Request

from .errors import TimedOut, connection_lost
from .results import EchoResult
from .transport import Deadline, endpoints

CHUNK_BYTES = 64 << 10


class Session:
    half_close = False  # shut down our sending side once everything is sent

    def __init__(
        self, sock: socket.socket, outgoing: bytes, attempts: int, pace_s: float = 0.0
    ) -> None:
        self.sock = sock
        self.outgoing = memoryview(outgoing)
        self.sent = 0
        self.pace_s = pace_s  # a slow sender: wait this long between chunks
        self.next_send = 0.0
        self.attempts = attempts
        self.endpoints = endpoints(sock)
        self.done = False

    @property
    def where(self) -> str:
        return self.endpoints.where

    def received(self, data: bytes) -> None:
        raise NotImplementedError

    def ended(self, reset: OSError | None) -> None:
        """The peer closed (``reset`` is None) or the connection broke (``reset`` says how)."""
        if reset is not None:
            raise connection_lost(self.where, reset, self.endpoints)
        self.done = True


class EchoSession(Session):
    """Sends its payload, half-closes, and hashes the echo until the server closes."""

    half_close = True

    def __init__(
        self,
        sock: socket.socket,
        payload: bytes,
        attempts: int,
        pace_s: float = 0.0,
        keep: bool = False,
    ) -> None:
        super().__init__(sock, payload, attempts, pace_s)
        self.received_bytes = 0
        self.digest = hashlib.sha256()
        self.kept = bytearray() if keep else None  # the echo itself (--text), bounded below

    def received(self, data: bytes) -> None:
        self.digest.update(data)
        self.received_bytes += len(data)
        if self.kept is not None and len(self.kept) < len(self.outgoing):
            self.kept += data[: len(self.outgoing) - len(self.kept)]
        if self.received_bytes > len(self.outgoing):  # more than we sent: wrong, and maybe
            self.done = True  # endless; the digests tell the rest

    def ended(self, reset: OSError | None) -> None:
        """A reset once the whole echo is here loses nothing (a server may reset after
        replying): the exchange is over, not failed."""
        if reset is not None and self.received_bytes >= len(self.outgoing):
            self.done = True
            return
        super().ended(reset)

    def closed_early(self) -> bool:
        """The server closed before echoing everything, but what it did echo was right:
        a lost connection (worth a retry), not corrupted data."""
        got = self.received_bytes
        return (
            got < len(self.outgoing)
            and hashlib.sha256(self.outgoing[:got]).hexdigest() == self.digest.hexdigest()
        )

    def result(self, elapsed_ms: float) -> EchoResult:
        size = len(self.outgoing)
        sent_digest = hashlib.sha256(self.outgoing).hexdigest()
        got_digest = self.digest.hexdigest()
        return EchoResult(
            self.endpoints,
            size,
            self.received_bytes,
            sent_digest,
            got_digest,
            self.attempts,
            self.received_bytes == size and sent_digest == got_digest,
            elapsed_ms,
            text=None if self.kept is None else self.kept.decode("utf-8", "replace"),
        )


class AppSession(Session):
    """Sends requests back to back (pipelined) and collects as many replies, in order, through
    a ``ClientConnection``: nothing the server sends can grow it past one reply of
    ``appconn.CLIENT_MAX_REPLY_BYTES`` or make it read past the replies it asked for.

    A server may close after fewer replies (the tutorial's server answers one per connection):
    the session then ends with ``closed_early`` set. A bad frame raises
    ``framing.RemoteProtocolError`` (the caller's to report)."""

    def __init__(self, sock: socket.socket, requests: list[Request], attempts: int) -> None:
        self.app = ClientConnection()
        super().__init__(sock, b"".join(self.app.send(r) for r in requests), attempts)
        self.needed = len(requests)
        self.replies: list[Reply | ErrorReply] = []
        self.closed_early = False
        self.reset: OSError | None = None  # how the connection broke, if it did

    def received(self, data: bytes) -> None:
        self.app.receive_data(data)
        self._take()

    def _take(self) -> None:
        while len(self.replies) < self.needed:
            event = self.app.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, Closed):
                self.done = self.closed_early = True
                return
            self.replies.append(event)  # type: ignore[arg-type]
        self.done = True

    def ended(self, reset: OSError | None) -> None:
        self.reset = reset
        if reset is None and not self.done:
            self.app.receive_data(b"")  # TruncatedMessage if it ended inside a reply
            self._take()
        self.done = True
        self.closed_early = len(self.replies) < self.needed


def read_what_is_left(session: Session) -> None:
    """After a failed send (the server reset the connection while we were still sending, a
    pipelined batch, say): the bytes it sent before are still in our receive buffer, and they
    may say why (an error reply). Read them before the session judges the reset; bounded by
    the kernel's buffer, which holds no more."""
    while not session.done:
        try:
            data = session.sock.recv(CHUNK_BYTES)
        except OSError:
            return
        if not data:
            return
        session.received(data)


def drive(sessions: Sequence[Session], timeout_s: float, deadline: Deadline | None = None) -> None:
    """Run every session to completion; ``TimedOut`` if no byte moves for ``timeout_s``, or
    when ``deadline`` (the exchange's overall one) passes."""
    write, read = selectors.EVENT_WRITE, selectors.EVENT_READ
    with selectors.DefaultSelector() as selector:
        for session in sessions:
            session.sock.setblocking(False)
            selector.register(session.sock, read | (write if len(session.outgoing) else 0), session)
        pending = len(sessions)
        resting: list[Session] = []  # paced sessions waiting for their next chunk
        last_progress = time.monotonic()
        while pending:
            now = time.monotonic()
            wait = timeout_s - (now - last_progress)
            if wait <= 0:
                done = sum(s.done for s in sessions)
                raise TimedOut(
                    f"no progress for {timeout_s:g}s with {done} of {len(sessions)} "
                    f"connections done",
                    sessions[0].endpoints,
                )
            if deadline is not None:
                wait = min(wait, deadline.check(sessions[0].where, sessions[0].endpoints))
            if resting:
                wait = max(0.0, min(wait, min(s.next_send for s in resting) - now))
            ready = selector.select(wait)
            now = time.monotonic()
            for session in [s for s in resting if s.next_send <= now and not s.done]:
                resting.remove(session)
                selector.modify(session.sock, read | write, session)
            for key, mask in ready:
                session = key.data
                try:
                    if mask & write and not session.done:
                        chunk = session.outgoing[session.sent : session.sent + CHUNK_BYTES]
                        session.sent += session.sock.send(chunk)
                        last_progress = now
                        if session.sent == len(session.outgoing):
                            if session.half_close:
                                session.sock.shutdown(socket.SHUT_WR)
                            selector.modify(session.sock, read, session)
                        elif session.pace_s:
                            session.next_send = now + session.pace_s
                            resting.append(session)
                            selector.modify(session.sock, read, session)
                    if mask & read and not session.done:
                        data = session.sock.recv(CHUNK_BYTES)
                        last_progress = now
                        if data:
                            session.received(data)
                        else:
                            session.ended(None)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:  # reset, broken pipe: the session decides what it means
                    read_what_is_left(session)  # what the server said before it went
                    session.ended(exc)
                if session.done:
                    selector.unregister(session.sock)
                    if session in resting:
                        resting.remove(session)
                    pending -= 1
