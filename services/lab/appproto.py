"""The framed application protocol's meaning, without sockets (wire format: ``lab.framing``).

Requests and replies (text/json)::

    {"action": "search",  "value": "ring"}   -> {"result": "<entry>"} or 'No match for "<value>".'
    {"action": "echo",    "value": <any>}    -> {"result": <the value>}
    {"action": "reverse", "value": "abc"}    -> {"result": "cba"}
    {"action": "whoami"}                     -> {"result": {"server_hostname", "server_address",
                                                 "server_port", "client_address", "client_port"}}
    anything else  -> {"result": 'Error: invalid action "<action>".', "error": {...}}

A binary request (any other content type) gets the tutorial's binary reply:
``b"First 10 bytes of request: " + content[:10]`` as ``binary/custom-server-binary-type``.

An error reply is ``{"result": "Error: <message>", "error": {"code", "message"}}``, so the
tutorial's client prints it sensibly. ``answer`` is what the server says to a request;
``parse_reply`` is how a client reads what came back. Adding an action is one entry in
``ACTIONS`` (and its test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import framing

BINARY_REPLY_TYPE = "binary/custom-server-binary-type"
BINARY_REPLY_PREFIX = b"First 10 bytes of request: "
KEEPS_CONNECTION = frozenset({"unknown-action", "bad-value"})  # errors after which we go on

SEARCH_TABLE = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
    "socket": "An endpoint for sending or receiving data across a network. \U0001f50c",
    "tcp": "A reliable, ordered byte stream. \U0001f4e6",
    "udp": "Datagrams: fast, unordered, and they may be lost. \U0001f4e8",
}


@dataclass(frozen=True)
class Context:
    """What an answer may need to know about the connection it is given on."""

    server_hostname: str
    server_address: str
    server_port: int
    client_address: str
    client_port: int


class BadValue(Exception):
    """The request is well formed, but its value is not one the action can take."""


def _search(value: Any, context: Context) -> Any:
    found = SEARCH_TABLE.get(value) if isinstance(value, str) else None
    return found or f'No match for "{framing.shown(value)}".'


def _echo(value: Any, context: Context) -> Any:
    return value


def _reverse(value: Any, context: Context) -> Any:
    if not isinstance(value, str):
        raise BadValue("reverse needs a string value.")
    return value[::-1]


def _whoami(value: Any, context: Context) -> Any:
    return {"server_hostname": context.server_hostname,
            "server_address": context.server_address, "server_port": context.server_port,
            "client_address": context.client_address, "client_port": context.client_port}


ACTIONS: dict[str, Callable[[Any, Context], Any]] = {
    "search": _search, "echo": _echo, "reverse": _reverse, "whoami": _whoami,
}


def error_reply(code: str, message: str) -> bytes:
    """An error as a text/json reply the tutorial's client prints sensibly (``result``)."""
    return framing.encode_json({"result": f"Error: {message}",
                                "error": {"code": code, "message": message}})


def binary_reply(content: bytes) -> bytes:
    return framing.encode_message(BINARY_REPLY_PREFIX + content[:10], BINARY_REPLY_TYPE,
                                  framing.BINARY_ENCODING)


def answer(request: framing.Message, context: Context) -> bytes:
    """The reply to one decoded request, as bytes to send."""
    if not request.is_json:
        return binary_reply(request.content)
    action = request.value.get("action")
    handler = ACTIONS.get(action) if isinstance(action, str) else None
    if handler is None:
        return error_reply("unknown-action", f'invalid action "{framing.shown(action)}".')
    try:
        result = handler(request.value.get("value"), context)
    except BadValue as exc:
        return error_reply("bad-value", str(exc))
    # In the encoding the request used, as the tutorial's peers expect (the codec accepted it, so
    # it is on the allow-list; what it cannot carry goes as JSON escapes).
    return framing.encode_json({"result": result}, request.content_encoding)


@dataclass(frozen=True)
class Reply:
    """A reply as a client reads it: a result, an error (code and message), or binary bytes."""

    result: Any = None
    error_code: str | None = None
    error_message: str | None = None
    binary: bytes | None = None

    @property
    def is_error(self) -> bool:
        return self.error_code is not None


class MalformedReply(ValueError):
    """What came back is a frame, but not a reply of this protocol."""


def parse_reply(message: framing.Message) -> Reply:
    if not message.is_json:
        return Reply(binary=message.content)
    value = message.value
    if "error" in value:
        error = value["error"]
        if not isinstance(error, dict):
            raise MalformedReply(f"a malformed error: {framing.clip(error)}")
        return Reply(result=value.get("result"), error_code=framing.shown(error.get("code")),
                     error_message=framing.shown(error.get("message"), 200))
    if "result" not in value:
        raise MalformedReply(f"no result: {framing.clip(value)}")
    return Reply(result=value["result"])
