"""The app protocol's two connection objects back to back in memory (no socket, h11's way): the
client's requests, the server's answers (``lab.appproto``), the client's checks, and every error
code from where it arises to what the client makes of it."""

from __future__ import annotations

import pytest
from framing_cases import INVALID, LIMIT, content_frame
from lab import appproto, framing
from lab.appconn import (
    APP_ERROR_CODES,
    KEEPS_CONNECTION,
    NEED_DATA,
    ClientConnection,
    Closed,
    ErrorReply,
    Reply,
    Request,
    ServerConnection,
)
from labclient.app import Expected, build_requests
from labclient.errors import DataMismatch, ProtocolError

CONTEXT = appproto.Context("server-host", "172.20.0.2", 65433, "172.20.0.3", 40000)


def serve(server: ServerConnection, wire: bytes, pieces: int = 1) -> bytes:
    """Feed ``wire`` to the server in ``pieces``; answer every request; its bytes back."""
    out = bytearray()
    step = max(1, len(wire) // pieces)
    for i in range(0, len(wire), step):
        server.receive_data(wire[i : i + step])
        while isinstance(event := server.next_event(), Request):
            out += server.send(appproto.answer(event, CONTEXT))
    return bytes(out)


def round_trip(expected: Expected, pieces: int = 1) -> object:
    client, server = ClientConnection(), ServerConnection()
    reply_wire = serve(server, client.send(expected.request), pieces)
    client.receive_data(reply_wire)
    reply = client.next_event()
    assert client.next_event() is NEED_DATA
    return expected.check(reply, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "value", "result"),
    [
        ("search", "ring", appproto.SEARCH_TABLE["ring"]),
        ("search", "nothing", 'No match for "nothing".'),
        ("echo", "caf\u00e9 \U0001f436", "caf\u00e9 \U0001f436"),
        ("reverse", "abc", "cba"),
        (
            "whoami",
            None,
            {
                "server_hostname": "server-host",
                "server_address": "172.20.0.2",
                "server_port": 65433,
                "client_address": "172.20.0.3",
                "client_port": 40000,
            },
        ),
    ],
)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "latin-1"])
def test_every_action_round_trips(
    action: str, value: str | None, result: object, encoding: str
) -> None:
    (expected,) = build_requests(action, value, 1, False, encoding)
    assert round_trip(expected) == result
    assert round_trip(expected, pieces=7) == result


def test_every_action_has_a_round_trip_case() -> None:
    assert set(appproto.ACTIONS) == {"search", "echo", "reverse", "whoami"}, (
        "a new action needs its case above"
    )


def test_binary_request_gets_the_tutorials_binary_reply() -> None:
    (expected,) = build_requests("echo", "0123456789abc", 1, True)
    assert round_trip(expected) == "First 10 bytes of request: echo012345"


def test_pipelined_requests_are_answered_in_order() -> None:
    client, server = ClientConnection(), ServerConnection()
    requests = build_requests("echo", "n", 20, False)
    client.receive_data(serve(server, b"".join(client.send(e.request) for e in requests), 13))
    replies = []
    for _ in requests:
        reply = client.next_event()
        assert isinstance(reply, Reply | ErrorReply), reply
        replies.append(reply)
    results = [e.check(r, i) for i, (e, r) in enumerate(zip(requests, replies, strict=True))]
    assert results == [f"n #{i}" for i in range(20)]
    assert client.waiting == 0 and client.next_event() is NEED_DATA


# -- every error code: where it arises, and what the client sees ----------------------------
def server_error(wire: bytes, eof: bool = False, limit: int = LIMIT) -> ErrorReply:
    """What the server answers to ``wire``: its codec's error, as the server sends it."""
    server = ServerConnection(limit)
    server.receive_data(wire)
    if eof:
        server.receive_data(b"")
    with pytest.raises(framing.RemoteProtocolError) as raised:
        while server.next_event() is not NEED_DATA:
            pass
    error = ErrorReply(raised.value.code, str(raised.value))
    client = ClientConnection()
    client.send(Request("echo", 1))
    client.receive_data(server.send(error))
    assert client.next_event() == error  # it reaches the client whole
    assert server.closing  # a codec error always ends the connection
    return error


CODEC_CASES = {code: wire for wire, code in INVALID.values()} | {
    "truncated": framing.encode_json({"action": "whoami"})[:-1],
    "too-deep": content_frame(b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}"),
    "too-many-values": content_frame(b'{"a": [' + b"0," * framing.MAX_JSON_VALUES + b"0]}"),
}


@pytest.mark.parametrize(
    "code", sorted(framing.REMOTE_ERROR_CODES - {"malformed-reply", "unsolicited-reply"})
)
def test_every_codec_error_reaches_the_client_and_closes(code: str) -> None:
    error = server_error(
        CODEC_CASES[code],
        eof=code == "truncated",
        limit=1 << 20 if code == "too-many-values" else LIMIT,
    )
    assert error.code == code and error.closes


@pytest.mark.parametrize("code", sorted(APP_ERROR_CODES))
def test_every_app_error_code_says_whether_it_closes(code: str) -> None:
    server, client = ServerConnection(), ClientConnection()
    client.send(Request("echo", 1))
    client.receive_data(server.send(ErrorReply(code, "why")))
    assert client.next_event() == ErrorReply(code, "why")
    assert server.closing == (code not in KEEPS_CONNECTION)


@pytest.mark.parametrize(
    ("action", "value", "code"),
    [
        ("dance", "x", "unknown-action"),
        ("reverse", None, "bad-value"),
        (["x"], 1, "unknown-action"),
    ],
)
def test_the_apps_own_errors_keep_the_connection(action: object, value: object, code: str) -> None:
    reply = appproto.answer(Request(action, value), CONTEXT)
    assert isinstance(reply, ErrorReply) and reply.code == code and not reply.closes
    with pytest.raises(ProtocolError, match=f"server answered an error: {code}: "):
        Expected(Request(action, value)).check(reply, 0)


# -- what a client makes of a server that breaks the protocol --------------------------------
@pytest.mark.parametrize(
    ("odd", "code"),
    [
        ({"no": "result"}, "malformed-reply"),
        ({"error": 5}, "malformed-reply"),
    ],
)
def test_a_frame_that_is_not_a_reply_is_a_protocol_error(odd: dict, code: str) -> None:
    client = ClientConnection()
    client.send(Request("echo", "x"))
    client.receive_data(framing.encode_json(odd))
    with pytest.raises(framing.RemoteProtocolError) as raised:
        client.next_event()
    assert raised.value.code == code


def test_a_reply_to_no_request_is_a_protocol_error() -> None:
    client = ClientConnection()
    client.send(Request("echo", "x"))
    client.receive_data(framing.encode_json({"result": "x"}) * 2)
    assert client.next_event() == Reply("x")
    with pytest.raises(framing.RemoteProtocolError, match="to no request"):
        client.next_event()


def test_end_of_stream_between_replies_and_inside_one() -> None:
    client = ClientConnection()
    client.send(Request("echo", "x"))
    client.receive_data(b"")
    assert isinstance(client.next_event(), Closed)
    client = ClientConnection()
    client.send(Request("echo", "x"))
    client.receive_data(framing.encode_json({"result": "x"})[:-1])
    client.receive_data(b"")
    with pytest.raises(framing.TruncatedMessage):
        client.next_event()


def test_a_wrong_result_is_a_mismatch() -> None:
    (expected,) = build_requests("echo", "x", 1, False)
    with pytest.raises(DataMismatch):
        expected.check(Reply("y"), 0)


def test_need_data_has_a_type_of_its_own() -> None:
    assert repr(NEED_DATA) == "NEED_DATA"
    assert not isinstance(NEED_DATA, Request | Reply | ErrorReply | Closed)
