"""The framed protocol's server on loopback: actions, pipelining, bad frames, tutorial peers."""

from __future__ import annotations

import socket
import threading

import pytest
from framing_cases import INVALID, LIMIT
from lab import framing
from labclient import app
from labclient.errors import ProtocolError
from labclient.transport import Target
from labtutorial import framed

TIMEOUT_S = 5


@pytest.fixture
def app_server(make_server):
    return make_server(LAB_MAX_CONTENT_BYTES=str(LIMIT), LAB_FRAME_DEADLINE_S="1")


def ask(server, action: str, value: str | None = None, **options) -> dict:
    """The client's result, as its JSON line says it."""
    return app.run(
        Target("127.0.0.1", server.ports["app"], socket.AF_UNSPEC, 2, TIMEOUT_S),
        action,
        value,
        **options,
    ).to_json()


@pytest.mark.parametrize(
    ("action", "value", "result"),
    [
        ("search", "ring", "In the caves beneath the Misty Mountains. \U0001f48d"),
        ("search", "\U0001f436", "\U0001f43e Playing ball! \U0001f3d0"),
        ("search", "nothing", 'No match for "nothing".'),
        ("echo", "caf\u00e9 \U0001f436", "caf\u00e9 \U0001f436"),
        ("reverse", "Hello, world!", "!dlrow ,olleH"),
    ],
)
def test_actions(app_server, action: str, value: str, result: str) -> None:
    assert ask(app_server, action, value)["result"] == result


def test_whoami_names_both_ends(app_server) -> None:
    answer = ask(app_server, "whoami")
    assert answer["result"]["client_address"] == answer["local_ip"] == "127.0.0.1"
    assert answer["result"]["client_port"] == answer["local_port"]
    assert answer["result"]["server_port"] == app_server.ports["app"]


def test_unknown_action_is_an_error_reply(app_server) -> None:
    with pytest.raises(ProtocolError, match='unknown-action: invalid action "dance"'):
        ask(app_server, "dance", "x")


def test_binary_request_gets_the_tutorials_binary_reply(app_server) -> None:
    answer = ask(app_server, "echo", "hello world", binary=True)
    assert answer["result"] == "First 10 bytes of request: echohello "


def test_a_hundred_pipelined_requests_answered_in_order_on_one_connection(app_server) -> None:
    answer = ask(app_server, "echo", "n", pipeline=100)
    assert answer["connections_used"] == 1 and answer["pipelined"]
    assert answer["results"] == [f"n #{i}" for i in range(100)]


def test_fifty_connections_at_once(app_server) -> None:
    answer = ask(app_server, "echo", "x", pipeline=5, connections=50)
    assert answer["completed"] == 50 and answer["all_ok"]


def test_the_tutorials_client_works_against_our_server(app_server) -> None:
    port = app_server.ports["app"]
    assert framed.request("127.0.0.1", port, "search", "ring")["reply"] == {
        "result": "In the caves beneath the Misty Mountains. \U0001f48d"
    }
    binary = framed.request("::1", port, "reverse", "abcdefghijk")
    assert binary["reply"] == "First 10 bytes of request: reverseabc"
    assert binary["header"]["content-type"] == "binary/custom-server-binary-type"


@pytest.fixture
def tutorial_server():
    ready = threading.Event()
    port: list[int] = []

    def started(number: int) -> None:
        port.append(number)
        ready.set()

    thread = threading.Thread(target=framed.serve, args=(0, 6, started), daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT_S)
    return port[0]


def test_our_client_works_against_the_tutorials_server(tutorial_server: int) -> None:
    def ask_tutorial(*args, **options) -> dict:
        return app.run(
            Target("127.0.0.1", tutorial_server, socket.AF_UNSPEC, 2, TIMEOUT_S), *args, **options
        ).to_json()

    assert ask_tutorial("search", "ring")["result"].startswith("In the caves")
    assert ask_tutorial("echo", "hello", binary=True)["result"] == (
        "First 10 bytes of request: echohello"
    )
    # It answers one request per connection: the client notices and carries on (3 + 1 used).
    answer = ask_tutorial("search", "morpheus", pipeline=3)
    assert answer["results"] == ["Follow the white rabbit. \U0001f430"] * 3
    assert answer["connections_used"] >= 3


@pytest.mark.parametrize("name", sorted(INVALID))
def test_bad_frame_gets_its_error_then_the_server_serves_others(app_server, name: str) -> None:
    wire, code = INVALID[name]
    with socket.create_connection(("127.0.0.1", app_server.ports["app"]), TIMEOUT_S) as sock:
        sock.sendall(wire + b"\x00\x10 trailing junk")
        reply = b""
        while chunk := sock.recv(65536):  # the server closes after its error reply
            reply += chunk
    decoder = framing.MessageDecoder()
    decoder.feed(reply)
    (error,) = list(decoder.messages())
    assert error.value["error"]["code"] == code
    assert error.value["result"].startswith("Error: ")
    app_server.expect("bad frame from peer=127.0.0.1")
    assert ask(app_server, "search", "ring")["result"].startswith("In the caves")


def test_end_of_stream_mid_frame_gets_truncated_error(app_server) -> None:
    with socket.create_connection(("127.0.0.1", app_server.ports["app"]), TIMEOUT_S) as sock:
        sock.sendall(framing.encode_json({"action": "echo", "value": "x" * 50})[:-10])
        sock.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    decoder = framing.MessageDecoder()
    decoder.feed(reply)
    assert next(decoder.messages()).value["error"]["code"] == "truncated"


def test_a_frame_left_unfinished_past_the_deadline_is_dropped(app_server) -> None:
    with socket.create_connection(("127.0.0.1", app_server.ports["app"]), TIMEOUT_S) as sock:
        sock.sendall(b"\x00")  # one byte of a length, then nothing
        reply = b"".join(iter(lambda: sock.recv(65536), b""))  # closed within ~2 s
    decoder = framing.MessageDecoder()
    decoder.feed(reply)
    assert next(decoder.messages()).value["error"]["code"] == "frame-deadline"
