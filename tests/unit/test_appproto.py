"""The app protocol's two sides wired back to back in memory (no socket, h11 style): the
client's requests, the server's answers (``lab.appproto``), the client's checks."""

from __future__ import annotations

import pytest
from lab import appproto, framing
from labclient.app import build_requests
from labclient.errors import DataMismatch, ProtocolError

CONTEXT = appproto.Context("server-host", "172.20.0.2", 65433, "172.20.0.3", 40000)


def round_trip(action: str, value: str | None, binary: bool = False,
               encoding: str = "utf-8") -> object:
    """Client builds the request; the server decodes and answers; the client checks it."""
    (request,) = build_requests(action, value, 1, binary, encoding)
    server = framing.MessageDecoder()
    server.feed(request.wire)
    (message,) = server.messages()
    client = framing.MessageDecoder()
    client.feed(appproto.answer(message, CONTEXT))
    (reply,) = client.messages()
    return request.check(reply, 0)


@pytest.mark.parametrize(("action", "value", "result"), [
    ("search", "ring", appproto.SEARCH_TABLE["ring"]),
    ("search", "nothing", 'No match for "nothing".'),
    ("echo", "caf\u00e9 \U0001f436", "caf\u00e9 \U0001f436"),
    ("reverse", "abc", "cba"),
    ("whoami", None, {"server_hostname": "server-host", "server_address": "172.20.0.2",
                      "server_port": 65433, "client_address": "172.20.0.3",
                      "client_port": 40000}),
])
def test_every_action_round_trips(action: str, value: str | None, result: object) -> None:
    assert round_trip(action, value) == result
    assert round_trip(action, value, encoding="utf-16") == result


def test_every_action_has_a_round_trip_case() -> None:
    tested = {"search", "echo", "reverse", "whoami"}
    assert set(appproto.ACTIONS) == tested, "a new action needs its case above"


def test_binary_request_gets_the_tutorials_binary_reply() -> None:
    assert round_trip("echo", "0123456789abc", binary=True) == (
        "First 10 bytes of request: echo012345")


@pytest.mark.parametrize(("action", "value", "code"), [
    ("dance", "x", "unknown-action"), ("reverse", None, "bad-value"),
])
def test_errors_reach_the_client_with_their_code(action: str, value: str | None,
                                                 code: str) -> None:
    with pytest.raises(ProtocolError, match=f"server answered an error: {code}: "):
        round_trip(action, value)


def test_a_reply_that_is_not_of_this_protocol_is_a_protocol_error() -> None:
    (request,) = build_requests("echo", "x", 1, False)
    for odd in ({"no": "result"}, {"error": 5}):
        decoder = framing.MessageDecoder()
        decoder.feed(framing.encode_json(odd))
        with pytest.raises(ProtocolError):
            request.check(next(decoder.messages()), 0)
    decoder = framing.MessageDecoder()
    decoder.feed(framing.encode_json({"result": "y"}))
    with pytest.raises(DataMismatch):
        request.check(next(decoder.messages()), 0)
