"""The framed application protocol, client side: build requests, send them, check the replies.

Requests on one connection are pipelined: all are sent back to back, then the replies are read
in order (``lab.appconn.ClientConnection`` reads them). Against a server that closes after each
correct reply (the tutorial's), the client notices and sends the rest one request per connection:
every action is idempotent, so a resend is safe. A server that closes after an error reply (its
memory budget, a bad frame) ends the command with that error: it is never a reason to open a
connection per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lab import appproto, framing
from lab.appconn import ErrorReply, Reply, Request

from .errors import DataMismatch, ProtocolError, connection_lost
from .results import AppManyResult, AppResult
from .sessions import AppSession, drive
from .transport import Deadline, Target, connect


@dataclass(frozen=True)
class Expected:
    """One request and what a correct reply to it looks like."""

    request: Request
    result: Any = None  # the result we know must come back (echo), or None

    def check(self, reply: Reply | ErrorReply, index: int) -> Any:
        """The reply's result, or a ``ClientError`` saying what is wrong with it."""
        if isinstance(reply, ErrorReply):
            raise ProtocolError(
                f"server answered an error: {reply.code}: {reply.message}",
                reply={"error": {"code": reply.code, "message": reply.message}},
            )
        if self.request.binary is not None:
            want = appproto.BINARY_REPLY_PREFIX + self.request.binary[:10]
            if reply.binary != want:
                raise DataMismatch(
                    f"reply {index}: binary reply {framing.clip(reply.binary)} is not {want!r}"
                )
            return reply.binary.decode("utf-8", "replace")
        if reply.binary is not None:
            raise ProtocolError(f"reply {index}: expected text/json, got binary content")
        if self.result is not None and reply.result != self.result:
            raise DataMismatch(
                f"reply {index} is {framing.clip(reply.result)}, expected "
                f"{framing.clip(self.result)} (out of order or corrupted)"
            )
        return reply.result


def build_requests(
    action: str, value: str | None, count: int, binary: bool, encoding: str = "utf-8"
) -> list[Expected]:
    """``count`` requests. Pipelined echoes carry distinct values so order can be checked."""
    if binary:  # the tutorial's binary request: action and value as bytes
        data = (action + (value or "")).encode("utf-8")
        return [Expected(Request(binary=data))] * count
    requests = []
    for i in range(count):
        this = value if count == 1 or action != "echo" else f"{value} #{i}"
        requests.append(
            Expected(Request(action, this, encoding), this if action == "echo" else None)
        )
    return requests


def _closing_error(session: AppSession) -> ErrorReply | None:
    """The error reply the server closed the connection after, if that is why it closed."""
    last = session.replies[-1] if session.replies else None
    return last if isinstance(last, ErrorReply) and last.closes else None


def exchange(target: Target, requests: list[Expected], action: str, value: str | None) -> AppResult:
    """Send ``requests`` and check every reply; pipelined, falling back as described above."""
    replies: list[Reply | ErrorReply] = []
    connections, pipelined, first = 0, True, None
    started = time.perf_counter()
    deadline = target.clock()
    while len(replies) < len(requests):
        todo = requests[len(replies) :] if pipelined else requests[len(replies) : len(replies) + 1]
        session = _run(target, [e.request for e in todo], deadline)
        connections += 1
        first = first or session
        replies.extend(session.replies)
        if (error := _closing_error(session)) is not None:
            raise ProtocolError(
                f"{session.where} answered an error and closed: {error.code}: {error.message}",
                session.endpoints,
            )
        if session.closed_early:
            if not session.replies and session.reset is not None:  # worth a retry
                raise connection_lost(session.where, session.reset, session.endpoints)
            if not session.replies:
                raise ProtocolError(
                    f"{session.where} closed the connection without a complete reply",
                    session.endpoints,
                )
            pipelined = False  # a server that answers one request per connection
    results = [
        req.check(reply, i) for i, (req, reply) in enumerate(zip(requests, replies, strict=True))
    ]
    assert first is not None
    request = requests[0].request
    return AppResult(
        first.endpoints,
        first.attempts,
        action,
        value,
        requests=len(requests),
        connections_used=connections,
        pipelined=pipelined and len(requests) > 1,
        binary=request.binary is not None,
        result=results[0],
        results=tuple(results) if len(results) > 1 else None,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def _run(target: Target, requests: list[Request], deadline: Deadline) -> AppSession:
    sock, attempts = connect(target)
    with sock:
        session = AppSession(sock, requests, attempts)
        try:
            drive([session], target.timeout_s, deadline)
        except framing.RemoteProtocolError as exc:
            raise ProtocolError(
                f"bad reply from {session.where}: {exc}", session.endpoints
            ) from None
    return session


def exchange_many(
    target: Target, requests: list[Expected], connections: int, action: str, value: str | None
) -> AppManyResult:
    """``connections`` clients at once, each pipelining all ``requests`` on its own connection."""
    sessions: list[AppSession] = []
    started = time.perf_counter()
    try:
        for _ in range(connections):
            sock, attempts = connect(target)
            sessions.append(AppSession(sock, [e.request for e in requests], attempts))
        try:
            drive(sessions, target.timeout_s, target.clock())
        except framing.RemoteProtocolError as exc:
            raise ProtocolError(f"bad reply: {exc}") from None
    finally:
        for session in sessions:
            session.sock.close()
    complete = 0
    for session in sessions:
        if session.closed_early:
            raise ProtocolError(
                f"{session.where} closed after {len(session.replies)} of {len(requests)} replies",
                session.endpoints,
            )
        for i, (req, reply) in enumerate(zip(requests, session.replies, strict=True)):
            req.check(reply, i)
        complete += 1
    return AppManyResult(
        action,
        value,
        connections=connections,
        completed=complete,
        requests_per_connection=len(requests),
        all_ok=complete == connections,
        peers=tuple(sorted({s.endpoints.peer_ip for s in sessions})),
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def run(
    target: Target,
    action: str,
    value: str | None,
    *,
    pipeline: int = 1,
    binary: bool = False,
    encoding: str = "utf-8",
    connections: int = 1,
) -> AppResult | AppManyResult:
    """The ``app`` subcommand: build the requests, send them, return the checked result."""
    requests = build_requests(action, value, pipeline, binary, encoding)
    if connections > 1:
        return exchange_many(target, requests, connections, action, value)
    return exchange(target, requests, action, value)
