"""The framed application protocol, client side: build requests, send them, check the replies.

Requests on one connection are pipelined: all are sent back to back, then the replies are read
in order. Against a server that closes after one reply (the tutorial's), the client notices the
early close and sends the rest one request per connection. Every action is idempotent, so a
resend is safe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lab import appproto, framing

from .errors import DataMismatch, ProtocolError
from .results import AppManyResult, AppResult
from .sessions import AppSession, drive
from .transport import Target, connect


@dataclass(frozen=True)
class Request:
    """One request and what a correct reply to it looks like."""

    wire: bytes
    binary: bool
    expected: Any = None  # the result we know must come back (echo), or None
    content: bytes = b""  # a binary request's content

    def check(self, reply: framing.Message, index: int) -> Any:
        """The reply's result, or a ``ClientError`` saying what is wrong with it."""
        try:
            parsed = appproto.parse_reply(reply)
        except appproto.MalformedReply as exc:
            raise ProtocolError(f"reply {index}: {exc}") from None
        if self.binary:
            want = appproto.BINARY_REPLY_PREFIX + self.content[:10]
            if parsed.binary != want:
                raise DataMismatch(f"reply {index}: binary reply {reply.content[:60]!r} is not "
                                   f"{want!r}")
            return parsed.binary.decode("utf-8", "replace")
        if parsed.binary is not None:
            raise ProtocolError(f"reply {index}: expected text/json, got {reply.content_type}")
        if parsed.is_error:
            raise ProtocolError(f"server answered an error: {parsed.error_code}: "
                                f"{parsed.error_message}", reply=reply.value)
        if self.expected is not None and parsed.result != self.expected:
            raise DataMismatch(f"reply {index} is {framing.clip(parsed.result)}, expected "
                               f"{framing.clip(self.expected)} (out of order or corrupted)")
        return parsed.result


def build_requests(action: str, value: str | None, count: int, binary: bool,
                   encoding: str = "utf-8") -> list[Request]:
    """``count`` requests. Pipelined echoes carry distinct values so order can be checked."""
    if binary:  # the tutorial's binary request: action and value as bytes
        data = (action + (value or "")).encode("utf-8")
        return [Request(framing.encode_binary(data), True, content=data)] * count
    requests = []
    for i in range(count):
        body: dict[str, Any] = {"action": action}
        this = value if count == 1 or action != "echo" else f"{value} #{i}"
        if this is not None:
            body["value"] = this
        expected = this if action == "echo" else None
        requests.append(Request(framing.encode_json(body, encoding), False, expected))
    return requests


def exchange(target: Target, requests: list[Request]) -> AppResult:
    """Send ``requests`` and check every reply; pipelined, falling back as described above."""
    replies: list[framing.Message] = []
    connections, pipelined, info = 0, True, None
    started = time.perf_counter()
    while len(replies) < len(requests):
        todo = requests[len(replies):] if pipelined else requests[len(replies):len(replies) + 1]
        sock, attempts = connect(target)
        connections += 1
        with sock:
            session = AppSession(sock, [r.wire for r in todo], attempts)
            info = info or {**session.info, "attempts": attempts}
            try:
                drive([session], target.timeout_s)
            except framing.RemoteProtocolError as exc:
                raise ProtocolError(f"bad reply from {session.where}: {exc}", **session.info
                                    ) from None
        replies.extend(session.replies[:len(todo)])
        if session.closed_early:
            if not pipelined and not session.replies:
                raise ProtocolError(f"{session.where} closed the connection without a complete "
                                    "reply", **session.info)
            pipelined = False
    results = [req.check(reply, i) for i, (req, reply) in enumerate(zip(requests, replies,
                                                                           strict=True))]
    return AppResult(**(info or {}), requests=len(requests), connections_used=connections,
                     pipelined=pipelined and len(requests) > 1, binary=requests[0].binary,
                     result=results[0], results=results if len(results) > 1 else None,
                     elapsed_ms=round((time.perf_counter() - started) * 1000, 3))


def exchange_many(target: Target, requests: list[Request], connections: int) -> AppManyResult:
    """``connections`` clients at once, each pipelining all ``requests`` on its own connection."""
    sessions: list[AppSession] = []
    started = time.perf_counter()
    try:
        for _ in range(connections):
            sock, attempts = connect(target)
            sessions.append(AppSession(sock, [r.wire for r in requests], attempts))
        try:
            drive(sessions, target.timeout_s)
        except framing.RemoteProtocolError as exc:
            raise ProtocolError(f"bad reply: {exc}") from None
    finally:
        for session in sessions:
            session.sock.close()
    complete = 0
    for session in sessions:
        if session.closed_early:
            raise ProtocolError(f"{session.where} closed after {len(session.replies)} of "
                                f"{len(requests)} replies", **session.info)
        for i, (req, reply) in enumerate(zip(requests, session.replies, strict=True)):
            req.check(reply, i)
        complete += 1
    return AppManyResult(connections=connections, completed=complete,
                         requests_per_connection=len(requests), all_ok=complete == connections,
                         peers=sorted({s.info["peer_ip"] for s in sessions}),
                         elapsed_ms=round((time.perf_counter() - started) * 1000, 3))


def run(target: Target, action: str, value: str | None, *, pipeline: int = 1,
        binary: bool = False, encoding: str = "utf-8",
        connections: int = 1) -> AppResult | AppManyResult:
    """The ``app`` subcommand: build the requests, send them, return the checked result."""
    requests = build_requests(action, value, pipeline, binary, encoding)
    if connections > 1:
        result: AppResult | AppManyResult = exchange_many(target, requests, connections)
    else:
        result = exchange(target, requests)
    result.update(action=action, value=value)
    return result
