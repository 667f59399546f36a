"""Malformed and hostile input across every listener, from a container on the network.

Each case states what the server must do with it. After each, the same listener must still answer
a well-formed request. Server memory (SDK stats) stays within a bound across the whole corpus.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hostile_peers
import pytest
from framing_cases import INVALID, LIMIT, header, raw_frame
from lab import framing, registry
from labserver.loop import HEALTH_SLOTS
from labstack import ComposeStack
from labstack.stack import event_matches
from serverlog import wait_for_warnings

pytestmark = pytest.mark.slow

ECHO, APP, GREET = (registry.default_port(name) for name in ("tcp-echo", "app", "greeting"))
MAX_DATAGRAM = 2048
FRAME_DEADLINE_S = 2
CAP = 48
MEMORY_BOUND_BYTES = 8 << 20
HOSTILE_SOURCE = Path(hostile_peers.__file__).read_text()
GOOD = framing.encode_json({"action": "search", "value": "ring"})
GARBAGE = os.urandom(3000)


@dataclass(frozen=True)
class Case:
    name: str
    port: int
    payload: bytes
    expect: str  # what the server must do (checked by ``check`` below)
    half_close: bool = True
    udp: bool = False
    rst: bool = False
    byte_delay_s: float = 0.0

    def wire(self) -> dict:
        return {
            "name": self.name,
            "port": self.port,
            "hex": self.payload.hex(),
            "half_close": self.half_close,
            "udp": self.udp,
            "rst": self.rst,
            "byte_delay_s": self.byte_delay_s,
        }


# Expectations: "error:<code>" an error reply with that code, then the connection closed;
# "echoed" the bytes come back exactly; "greeting" the greeting line, then closed;
# "dropped" no reply (UDP); "reset" we reset the connection and the server copes.
CASES = [
    *(Case(f"app {name}", APP, wire, f"error:{code}") for name, (wire, code) in INVALID.items()),
    Case("app truncated header", APP, GOOD[:20], "error:truncated"),
    Case("app truncated content", APP, GOOD[:-4], "error:truncated"),
    Case(
        "app zero content-length json",
        APP,
        raw_frame(header(**{"content-length": 0})),
        "error:content-not-json",
    ),
    Case(
        "app good request then garbage",
        APP,
        GOOD + b"\x00\x05hello",
        "result+error:header-not-json",
    ),
    Case(
        "app header one byte per second",
        APP,
        GOOD,
        "error:frame-deadline",
        half_close=False,
        byte_delay_s=1.0,
    ),
    Case("app reset mid-frame", APP, GOOD[:30], "reset", half_close=False, rst=True),
    Case(
        "app content-length at the limit",
        APP,
        raw_frame(header(**{"content-type": "x", "content-length": LIMIT}), b"z" * LIMIT),
        "binary-reply",
    ),
    Case("echo garbage", ECHO, GARBAGE, "echoed"),
    Case("echo nothing, half-close", ECHO, b"", "echoed"),
    Case("echo reset mid-stream", ECHO, GARBAGE, "reset", half_close=False, rst=True),
    Case("greeting garbage sent", GREET, GARBAGE[:500], "greeting"),
    Case("greeting half-close at once", GREET, b"", "greeting"),
    Case("greeting a framed request", GREET, GOOD, "greeting"),
    Case("udp oversized datagram", ECHO, GARBAGE, "dropped", udp=True),
    Case("udp empty datagram", ECHO, b"", "echoed", udp=True),
    Case("udp datagram at the limit", ECHO, GARBAGE[:MAX_DATAGRAM], "echoed", udp=True),
    Case("udp framed request", ECHO, GOOD, "echoed", udp=True),
]


def replies(outcome: dict) -> list[dict]:
    decoder = framing.MessageDecoder(LIMIT + 1)
    decoder.feed(bytes.fromhex(outcome["received_hex"]))
    return [m.value if m.is_json else {"binary": m.content} for m in decoder.messages()]


def check(case: Case, outcome: dict) -> None:
    expect = case.expect
    if expect.startswith("error:"):
        assert [r["error"]["code"] for r in replies(outcome)] == [expect[6:]]
        assert outcome["end"] == "closed"
        if case.byte_delay_s:  # cut off by the deadline long before the last byte
            assert outcome["sent_bytes"] < len(case.payload)
            assert FRAME_DEADLINE_S <= outcome["elapsed_s"] < FRAME_DEADLINE_S + 3
    elif expect == "result+error:header-not-json":
        first, second = replies(outcome)
        assert "Misty Mountains" in first["result"]
        assert second["error"]["code"] == "header-not-json"
    elif expect == "binary-reply":
        assert replies(outcome) == [{"binary": b"First 10 bytes of request: zzzzzzzzzz"}]
    elif expect == "echoed" and case.udp:
        assert outcome["udp_reply_hex"] == case.payload.hex()
    elif expect == "echoed":
        assert outcome["received_hex"] == case.payload.hex()
        assert outcome["end"] == "closed"
    elif expect == "greeting":
        assert outcome["received_text"].startswith("Hello from ")
        assert outcome["end"] == "closed"
    elif expect == "dropped":
        assert outcome["udp_reply_hex"] is None
    elif expect == "reset":
        assert outcome["reset_sent"] is True
    else:
        raise AssertionError(f"unknown expectation {expect}")


@pytest.fixture(scope="module")
def limited() -> Iterator[ComposeStack]:
    """A stack whose server has small limits, so each is reachable in a test."""
    env = {
        "LAB_MAX_CONTENT_BYTES": str(LIMIT),
        "LAB_MAX_DATAGRAM_BYTES": str(MAX_DATAGRAM),
        "LAB_FRAME_DEADLINE_S": str(FRAME_DEADLINE_S),
        "LAB_MAX_CONNECTIONS": str(CAP),
    }
    with ComposeStack(env=env) as stack:
        stack.first_process = stack.process_identity()
        yield stack


@pytest.fixture(autouse=True)
def same_process_survives(request: pytest.FixtureRequest) -> Iterator[None]:
    """No bad input may kill the server: the restart policy must not be what hides a crash."""
    yield
    if "limited" in request.fixturenames:
        stack = request.getfixturevalue("limited")
        assert stack.process_identity() == stack.first_process, "the server process died"


def test_corpus_has_at_least_25_cases_across_every_listener() -> None:
    assert len(CASES) >= 25
    assert {c.port for c in CASES} == {ECHO, APP, GREET}
    assert any(c.udp for c in CASES)
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def corpus_run(limited: ComposeStack) -> dict:
    before = limited.memory_bytes("server")
    mark = limited.log_mark()
    run = limited.start_python(
        HOSTILE_SOURCE, "corpus", "server", json.dumps([c.wire() for c in CASES])
    )
    result = run.wait(300)
    assert result.exit_code == 0, result
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "outcomes": {o["name"]: o for o in outcomes},
        "before": before,
        "mark": mark,
        "after": limited.memory_bytes("server"),
        "log": limited.server_log(mark),
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_its_answer_and_the_server_still_serves(
    corpus_run: dict, case: Case
) -> None:
    outcome = corpus_run["outcomes"][case.name]
    check(case, outcome)
    assert outcome["served_after"] is True


def test_corpus_reports_every_problem_and_no_traceback(
    limited: ComposeStack, corpus_run: dict
) -> None:
    log = corpus_run["log"]
    assert "Traceback" not in log
    bad_frames = sum(c.expect.startswith("error:") or "error:" in c.expect for c in CASES)
    # One line each for the first few per 5 s, then a count: every one is reported, none twice.
    assert wait_for_warnings(limited, corpus_run["mark"], "bad-frame", bad_frames) == bad_frames
    events = limited.server_events(corpus_run["mark"])
    assert any(
        e["event"].startswith("udp-echo drop") and e.get("reason") == "over 2048 bytes"
        for e in events
    ), events
    assert any(e["event"] == "closed" and e["reason"] == "reset by peer" for e in events)


def test_server_memory_stays_bounded_across_the_corpus(corpus_run: dict) -> None:
    grew = corpus_run["after"] - corpus_run["before"]
    print(
        f"server memory {corpus_run['before'] / 2**20:.1f} MiB before, "
        f"{corpus_run['after'] / 2**20:.1f} MiB after the corpus"
    )
    assert grew < MEMORY_BOUND_BYTES


def test_a_flood_past_the_connection_cap_is_refused_cleanly(limited: ComposeStack) -> None:
    """Twice the cap at once: the excess is told "busy" and closed, counted in the log; the
    connections within the cap are held; once the flood ends, service is normal."""
    mark = limited.log_mark()
    flood = limited.start_python(HOSTILE_SOURCE, "flood", "server", str(APP), str(2 * CAP), "3")
    limited.wait_for_log(flood.container, "busy")
    counts = json.loads(flood.logs().strip().splitlines()[0])
    assert counts["failed"] == 0
    # The last HEALTH_SLOTS are loopback's (the health check's), so the count is exact.
    assert counts["held"] == CAP - HEALTH_SLOTS
    assert counts["busy"] == CAP + HEALTH_SLOTS
    assert flood.wait(30).exit_code == 0
    # Every refusal is reported (the first few a line each, then a count), and none of the
    # health check's: loopback has slots of its own.
    assert (
        wait_for_warnings(limited, mark, "refused (at capacity)", counts["busy"]) == counts["busy"]
    )
    loopback = [
        e
        for e in limited.server_events(mark)
        if event_matches(e, {"peer_ip": "127.0.0.1"}) or event_matches(e, {"peer_ip": "::1"})
    ]
    assert loopback == []  # the health check's own probes stay out of the story
    answer = limited.run_client("app", "search", "ring")
    assert answer.exit_code == 0 and "Misty Mountains" in answer.result
