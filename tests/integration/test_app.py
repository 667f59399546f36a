"""The framed application protocol across containers, and with the tutorial's peers."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from framing_cases import INVALID
from lab import framing, registry
from labstack import ComposeStack
from labtutorial import framed
from serverlog import wait_for_warnings
from test_cross_host import FAMILIES, assert_crossed_hosts

APP_PORT = str(registry.default_port("app"))
GOOD_REQUEST = framing.encode_json({"action": "search", "value": "ring"})
RING = "In the caves beneath the Misty Mountains. \U0001f48d"
TUTORIAL_SOURCE = Path(framed.__file__).read_text()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("args", "result"),
    [
        (("search", "ring"), RING),
        (("search", "nobody"), 'No match for "nobody".'),
        (("echo", "caf\u00e9"), "caf\u00e9"),
        (("reverse", "Hello, world!"), "!dlrow ,olleH"),
        (("echo", "--binary", "0123456789abc"), "First 10 bytes of request: echo012345"),
    ],
)
def test_action_across_containers(
    stack: ComposeStack, family: int, args: tuple, result: str
) -> None:
    answer = stack.run_client("app", *args, "--family", str(family))
    assert_crossed_hosts(stack, answer, family)
    assert answer.result == result


@pytest.mark.parametrize("family", FAMILIES)
def test_whoami_shows_the_cross_host_story_at_protocol_level(
    stack: ComposeStack, family: int
) -> None:
    answer = stack.run_client("app", "whoami", "--family", str(family))
    assert_crossed_hosts(stack, answer, family)
    seen = answer.result
    server_ip = ipaddress.ip_address(stack.ip_of("server", family))
    assert ipaddress.ip_address(seen["server_address"]) == server_ip
    assert seen["client_address"] == answer.local_ip
    assert seen["client_port"] == answer.local_port
    assert seen["server_hostname"] == stack.container("server").attrs["Config"]["Hostname"]


def test_unknown_action_is_a_protocol_error_exit_5(stack: ComposeStack) -> None:
    answer = stack.run_client("app", "dance", "x")
    assert answer.exit_code == 5, answer
    assert 'invalid action "dance"' in answer.error


def test_a_hundred_pipelined_requests_on_one_connection(stack: ComposeStack) -> None:
    answer = stack.run_client("app", "echo", "req", "--pipeline", "100")
    assert answer.exit_code == 0, answer
    assert answer.connections_used == 1 and answer.pipelined is True
    assert answer.results == [f"req #{i}" for i in range(100)]


def test_fifty_concurrent_connections(stack: ComposeStack) -> None:
    answer = stack.run_client("app", "echo", "x", "--pipeline", "10", "--connections", "50")
    assert answer.exit_code == 0, answer
    assert answer.completed == 50 and answer.all_ok is True
    assert answer.peers == [stack.ip_of("server", 4)]


def test_each_bad_frame_gets_its_error_and_the_server_serves_the_next_request(
    stack: ComposeStack,
) -> None:
    cases = {name: case for name, case in INVALID.items() if name != "content-over-limit"}
    args = []
    for wire, _ in cases.values():
        args += ["--hex", wire.hex(), "--hex", GOOD_REQUEST.hex()]
    # Half-close after each payload, so the server closes after answering (it keeps a
    # well-behaved connection open otherwise) and every probe ends at once.
    answer = stack.run_client("raw", "--port", APP_PORT, "--half-close", *args)
    assert answer.exit_code == 0, answer
    probes = answer.probes
    assert len(probes) == 2 * len(cases)
    for (name, (_, code)), bad, good in zip(cases.items(), probes[::2], probes[1::2], strict=True):
        assert bad["closed_by_server"], name
        assert [r["error"]["code"] for r in bad["replies"]] == [code], name
        assert [r["result"] for r in good["replies"]] == [RING], f"after {name}"
    logs = stack.container("server").logs().decode()
    assert "Traceback" not in logs
    # Every bad frame is reported: the first few one line each, the rest in a summary.
    assert wait_for_warnings(stack, 0, "bad-frame", len(cases)) >= len(cases)


def test_end_of_stream_mid_frame_gets_truncated_then_others_are_served(stack: ComposeStack) -> None:
    answer = stack.run_client(
        "raw",
        "--port",
        APP_PORT,
        "--half-close",
        "--hex",
        GOOD_REQUEST[:-5].hex(),
        "--hex",
        GOOD_REQUEST.hex(),
    )
    truncated, good = answer.probes
    assert truncated["replies"][0]["error"]["code"] == "truncated"
    assert good["replies"][0]["result"] == RING


def test_the_tutorials_client_in_a_container_against_our_server(stack: ComposeStack) -> None:
    run = stack.start_python(TUTORIAL_SOURCE, "client", "server", APP_PORT, "search", "ring")
    result = run.wait(60)
    assert result.exit_code == 0, result
    assert result.reply == {"result": RING}
    binary = stack.start_python(TUTORIAL_SOURCE, "client", "server", APP_PORT, "x", "0123456789")
    assert binary.wait(60).reply == "First 10 bytes of request: x012345678"


def test_our_client_against_the_tutorials_server_in_a_container(stack: ComposeStack) -> None:
    tutorial = stack.start_python(TUTORIAL_SOURCE, "server", "7000", "10")
    stack.wait_for_log(tutorial.container, "listening on port 7000")
    host = stack.address_of(tutorial.container, 6)
    single = stack.run_client("app", "search", "ring", "--host", host, "--port", "7000")
    assert single.exit_code == 0, single
    assert single.result == RING
    several = stack.run_client(
        "app", "search", "ring", "--pipeline", "3", "--host", host, "--port", "7000"
    )
    assert several.exit_code == 0, several
    assert several.results == [RING] * 3
    assert several.connections_used >= 3  # it answers one request per connection
