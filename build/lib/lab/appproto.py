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
tutorial's client prints it sensibly. ``answer`` is what the server says to a request, as an
event of ``lab.appconn`` (which turns events into bytes and back). Adding an action is one entry
in ``ACTIONS`` (and its test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import framing
from .appconn import ErrorReply, Reply, Request

BINARY_REPLY_PREFIX = b"First 10 bytes of request: "

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
    return {
        "server_hostname": context.server_hostname,
        "server_address": context.server_address,
        "server_port": context.server_port,
        "client_address": context.client_address,
        "client_port": context.client_port,
    }


ACTIONS: dict[str, Callable[[Any, Context], Any]] = {
    "search": _search,
    "echo": _echo,
    "reverse": _reverse,
    "whoami": _whoami,
}


def answer(request: Request, context: Context) -> Reply | ErrorReply:
    """The reply to one request."""
    if request.binary is not None:
        return Reply(binary=BINARY_REPLY_PREFIX + request.binary[:10])
    handler = ACTIONS.get(request.action) if isinstance(request.action, str) else None
    if handler is None:
        return ErrorReply("unknown-action", f'invalid action "{framing.shown(request.action)}".')
    try:
        result = handler(request.value, context)
    except BadValue as exc:
        return ErrorReply("bad-value", str(exc))
    # In the encoding the request used, as the tutorial's peers expect (the codec accepted it, so
    # it is on the allow-list; what it cannot carry goes as JSON escapes).
    return Reply(result, encoding=request.encoding)
