"""The framed application protocol as two connection objects, without sockets (h11's shape).

    client = ClientConnection()                     server = ServerConnection()
    wire = client.send(Request("reverse", "abc"))   server.receive_data(wire)
                                                    request = server.next_event()    # Request
                                                    wire = server.send(Reply("cba"))
    client.receive_data(wire)
    client.next_event()                             # Reply(result="cba")

``receive_data(b"")`` is the end of the stream. ``next_event()`` returns an event, ``NEED_DATA``
(nothing complete yet), or ``Closed`` (the peer closed between messages); it raises
``framing.RemoteProtocolError`` when the peer's bytes break the protocol (its ``code`` says
how; ``TruncatedMessage`` when the stream ended inside a message). ``send(event)`` returns the
bytes to send and raises ``framing.LocalProtocolError`` for what cannot be sent.

The server, the client, the health probe, the load generator and the fuzzers all use these two
objects: what a reply looks like, and which errors end a connection (``closes``), are said once.
Wire format: ``lab.framing``; what the server answers: ``lab.appproto``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from . import framing

BINARY_REQUEST_TYPE = "binary/custom-client-binary-type"
BINARY_REPLY_TYPE = "binary/custom-server-binary-type"
# Errors after which the connection goes on: the stream is still in step. Every other error
# reply is the server's last word on its connection.
KEEPS_CONNECTION = frozenset({"unknown-action", "bad-value", "reply-too-large"})
# The error codes the server's own logic may answer with (the codec's are
# framing.REMOTE_ERROR_CODES): docs/protocol.md lists both.
APP_ERROR_CODES = frozenset({*KEEPS_CONNECTION, "frame-deadline", "busy", "memory-budget"})
CLIENT_MAX_REPLY_BYTES = 8 << 20  # a client takes no larger reply (the server's are <= 1 MiB)


class _Sentinel(type):
    """A class that is its own type (h11's trick), so ``NEED_DATA`` has an honest type."""

    def __repr__(cls) -> str:
        return cls.__name__


class NEED_DATA(metaclass=_Sentinel):  # noqa: N801 (a sentinel, named as h11 names it)
    """``next_event()``: no complete message yet; feed more bytes."""


@dataclass(frozen=True)
class Request:
    """A request. JSON: ``action`` and ``value`` (None leaves ``value`` out) in ``encoding``;
    binary (the tutorial's other kind): ``binary`` is the content."""

    action: Any = None
    value: Any = None
    encoding: str = "utf-8"
    binary: bytes | None = None
    content_type: str = BINARY_REQUEST_TYPE


@dataclass(frozen=True)
class Reply:
    """A successful reply: ``result`` (JSON), or ``binary`` content."""

    result: Any = None
    binary: bytes | None = None
    encoding: str = "utf-8"


@dataclass(frozen=True)
class ErrorReply:
    """The server's error: ``code`` (stable, short) and ``message`` (for people)."""

    code: str
    message: str

    @property
    def closes(self) -> bool:
        """Does the server close the connection after this error?"""
        return self.code not in KEEPS_CONNECTION


@dataclass(frozen=True)
class Closed:
    """The peer closed its side between messages."""


Event: TypeAlias = Request | Reply | ErrorReply | Closed


class _Connection:
    """What both sides share: a decoder, the end of stream, and the events out of them."""

    def __init__(self, max_content_bytes: int) -> None:
        self._decoder = framing.MessageDecoder(max_content_bytes)
        self._eof = False

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes from the peer (copied); ``b""`` is its end of stream."""
        if data:
            self._decoder.feed(data)
        else:
            self._eof = True

    def _next_message(self) -> framing.Message | type[NEED_DATA] | Closed:
        message = self._decoder.next_message()
        if message is framing.MessageDecoder.NEED_DATA:
            if self._eof:
                self._decoder.receive_eof()  # TruncatedMessage inside a message
                return Closed()
            return NEED_DATA
        return message  # type: ignore[return-value]

    @property
    def in_progress(self) -> bool:
        """Part of a message has arrived."""
        return self._decoder.in_progress

    def ready(self) -> bool:
        """Can ``next_event`` get further: a whole header or message is buffered, or the peer's
        end of stream has come (``Closed``, or ``TruncatedMessage`` inside a message)? A
        server that stops answering for a turn must come back for the end of stream too."""
        return self._eof or self._decoder.ready()

    @property
    def held_bytes(self) -> int:
        return self._decoder.held_bytes

    def clear(self) -> None:
        """Let go of everything buffered (the connection is closing)."""
        self._decoder.clear()


class ServerConnection(_Connection):
    """The server's side: requests in, replies out. ``closing`` is set once an error reply that
    ends the connection has been sent: send nothing more, and close."""

    def __init__(self, max_content_bytes: int = framing.DEFAULT_MAX_CONTENT_BYTES) -> None:
        super().__init__(max_content_bytes)
        self.closing = False

    def next_event(self) -> Request | Closed | type[NEED_DATA]:
        message = self._next_message()
        if not isinstance(message, framing.Message):
            return message
        if not message.is_json:
            return Request(binary=message.content, content_type=message.content_type)
        body = message.value
        return Request(body.get("action"), body.get("value"), message.content_encoding)

    def send(self, event: Reply | ErrorReply) -> bytes:
        if isinstance(event, ErrorReply):
            self.closing = self.closing or event.closes
            return error_reply(event.code, event.message)
        if event.binary is not None:
            return framing.encode_message(event.binary, BINARY_REPLY_TYPE, framing.BINARY_ENCODING)
        return framing.encode_json({"result": event.result}, event.encoding)


def error_reply(code: str, message: str) -> bytes:
    """An error as a text/json reply that the tutorial's client prints sensibly (``result``)."""
    return framing.encode_json(
        {"result": f"Error: {message}", "error": {"code": code, "message": message}}
    )


class ClientConnection(_Connection):
    """The client's side: requests out, replies in, in order. A reply that comes when no
    request is waiting for one, or that is a frame but not a reply, is a protocol error
    (``unsolicited-reply``, ``malformed-reply``)."""

    def __init__(self, max_reply_bytes: int = CLIENT_MAX_REPLY_BYTES) -> None:
        super().__init__(max_reply_bytes)
        self.waiting = 0  # requests sent and not yet answered

    def send(self, request: Request) -> bytes:
        if request.binary is not None:
            wire = framing.encode_binary(request.binary, request.content_type)
        else:
            body: dict[str, Any] = {"action": request.action}
            if request.value is not None:
                body["value"] = request.value
            wire = framing.encode_json(body, request.encoding)
        self.waiting += 1
        return wire

    def next_event(self) -> Reply | ErrorReply | Closed | type[NEED_DATA]:
        message = self._next_message()
        if not isinstance(message, framing.Message):
            return message
        if not self.waiting:
            raise framing.RemoteProtocolError(
                "the server sent a reply to no request", "unsolicited-reply"
            )
        self.waiting -= 1
        return reply_of(message)


def reply_of(message: framing.Message) -> Reply | ErrorReply:
    """A decoded frame as a reply, or ``RemoteProtocolError`` (``malformed-reply``)."""
    if not message.is_json:
        return Reply(binary=message.content)
    value = message.value
    if "error" in value:
        error = value["error"]
        if not isinstance(error, dict):
            raise framing.RemoteProtocolError(
                f"a malformed error: {framing.clip(error)}", "malformed-reply"
            )
        return ErrorReply(
            framing.shown(error.get("code")), framing.shown(error.get("message"), 200)
        )
    if "result" not in value:
        raise framing.RemoteProtocolError(
            f"a reply without a result: {framing.clip(value)}", "malformed-reply"
        )
    return Reply(value["result"], encoding=message.content_encoding)
