"""An attacker's inputs across containers: each once crashed, froze, or grew the server.

Every test here ends with the *same* server process serving (same host PID, start time and
restart count) and healthy: `restart: unless-stopped` must never be what hides a crash. The last
test shows the restart policy does bring a server back that really dies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import hostile_peers
import pytest
from framing_cases import content_frame, header, raw_frame
from lab import framing, registry
from labserver.loop import HEALTH_SLOTS
from labstack import ComposeStack
from serverlog import wait_for_warnings

# The times asserted here are the server's own limits (first byte, lifetime, frame deadline),
# each with a margin, and replies "at once" (under 1 s): make test runs this module beside the
# other groups (test_bounded.py, which times bystanders' waits under attack, runs alone).
pytestmark = pytest.mark.slow

APP, ECHO = registry.default_port("app"), registry.default_port("tcp-echo")
HOSTILE_SOURCE = Path(hostile_peers.__file__).read_text()
MAX_CONNECTIONS, PER_IP = 180, 100
FIRST_BYTE_S, LIFETIME_S, FRAME_DEADLINE_S, UDP_RATE = 3, 5, 3, 100
ENV = {
    "LAB_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "LAB_MAX_CONNECTIONS_PER_IP": str(PER_IP),
    "LAB_FIRST_BYTE_TIMEOUT_S": str(FIRST_BYTE_S),
    "LAB_MAX_LIFETIME_S": str(LIFETIME_S),
    "LAB_FRAME_DEADLINE_S": str(FRAME_DEADLINE_S),
    "LAB_UDP_RATE_PER_SOURCE": str(UDP_RATE),
}


@pytest.fixture(scope="module")
def guarded() -> Iterator[ComposeStack]:
    with ComposeStack(env=ENV) as stack:
        stack.first_process = stack.process_identity()
        yield stack


@pytest.fixture(autouse=True)
def same_process_survives(guarded: ComposeStack) -> Iterator[None]:
    yield
    assert guarded.process_identity() == guarded.first_process, "the server process died"
    status, output = guarded.healthcheck()
    assert status == 0, output
    assert "Traceback" not in guarded.server_log()


def run_peer(stack: ComposeStack, *args: str, timeout_s: float = 120) -> dict:
    result = stack.start_python(HOSTILE_SOURCE, *args).wait(timeout_s)
    assert result.exit_code == 0, result
    return json.loads(result.stdout.strip().splitlines()[-1])


def replies(hex_data: str) -> list[dict]:
    decoder = framing.MessageDecoder(1 << 24)
    decoder.feed(bytes.fromhex(hex_data))
    return [m.value for m in decoder.messages()]


RUN_UNITS = (b"x", b"[", b"]", b"\\u00e9")


def squeezed(wire: bytes) -> dict:
    """A case's payload with its long runs (of ``RUN_UNITS``) written as counts, so that large
    inputs fit on the peer's command line."""
    return {"parts": _runs(wire)}


def _runs(wire: bytes) -> list[list]:
    best = None
    for unit in RUN_UNITS:
        start = wire.find(unit * 64)
        if start >= 0:
            end = start
            while wire.startswith(unit, end):
                end += len(unit)
            if best is None or end - start > best[2] - best[1]:
                best = (unit, start, end)
    if best is None:
        return [[wire.hex(), 1]] if wire else []
    unit, start, end = best
    return [*_runs(wire[:start]), [unit.hex(), (end - start) // len(unit)], *_runs(wire[end:])]


ISSUE_INPUTS = {  # name: (bytes, the error the server must answer)
    "2,002-byte frame: header of 2,000 '['": ((2000).to_bytes(2, "big") + b"[" * 2000, "too-deep"),
    "content nested 1,000 deep": (
        content_frame(b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}"),
        "too-deep",
    ),
    "encoding 'undefined'": (content_frame(b"{}", "undefined"), "bad-encoding"),
    "encoding 'punycode', bad input": (content_frame(b"\xff{}", "punycode"), "bad-encoding"),
    "encoding 'idna', '..'": (content_frame(b"..", "idna"), "bad-encoding"),
    "18 KB in punycode (was 3.2 s of CPU)": (
        content_frame(
            json.dumps({"action": "echo", "value": "\u00e9" * 18000}).encode(), "punycode"
        ),
        "bad-encoding",
    ),
    "a 65 KB encoding name": (content_frame(b"{}", "x" * 65000), "bad-encoding"),
}


def test_the_issues_inputs_get_error_replies_at_once(guarded: ComposeStack) -> None:
    cases = [
        {"name": name, "port": APP, "half_close": True, **squeezed(wire)}
        for name, (wire, _) in ISSUE_INPUTS.items()
    ]
    outcomes = run_peer(guarded, "corpus", "server", json.dumps(cases))
    for outcome in outcomes:
        name = outcome["name"]
        (reply,) = replies(outcome["received_hex"])
        assert reply["error"]["code"] == ISSUE_INPUTS[name][1], name
        assert outcome["end"] == "closed" and outcome["served_after"], name
        assert outcome["elapsed_s"] < 1.0, f"{name} took {outcome['elapsed_s']} s"
        assert len(outcome["received_hex"]) // 2 <= 1024, f"{name}: reply larger than 1 KiB"


def test_unique_encoding_names_do_not_grow_the_server(guarded: ComposeStack) -> None:
    """300 connections with unique 65 KB names once grew RSS by 20 MiB, for good."""
    before = guarded.memory_bytes("server")
    names = [f"{i:05d}{'x' * 65000}" for i in range(300)]
    cases = [
        {"name": str(i), "port": APP, "half_close": True, **squeezed(content_frame(b"{}", name))}
        for i, name in enumerate(names)
    ]
    outcomes = run_peer(guarded, "corpus", "server", json.dumps(cases))
    assert all(replies(o["received_hex"])[0]["error"]["code"] == "bad-encoding" for o in outcomes)
    grew = guarded.memory_bytes("server") - before
    print(f"server memory grew {grew / 2**20:.2f} MiB over 300 unique encoding names")
    assert grew < 4 << 20


def test_one_address_cannot_take_every_slot_and_health_is_still_true_when_full(
    guarded: ComposeStack,
) -> None:
    mark = guarded.log_mark()
    # Over IPv4: each container is an address of its own. (Over IPv6 every container of the
    # lab's network is in one /64, which the cap counts as one peer: test_bounded.py.)
    server_v4 = guarded.ip_of("server", 4)
    greedy = guarded.start_python(
        HOSTILE_SOURCE, "flood", server_v4, str(ECHO), str(PER_IP + 10), "4"
    )
    guarded.wait_for_log(greedy.container, "busy")
    counts = json.loads(greedy.logs().strip().splitlines()[0])
    assert counts == {"busy": 10, "held": PER_IP, "failed": 0}
    other = guarded.start_python(HOSTILE_SOURCE, "flood", server_v4, str(ECHO), str(PER_IP), "3")
    guarded.wait_for_log(other.container, "busy")
    counts = json.loads(other.logs().strip().splitlines()[0])
    room = MAX_CONNECTIONS - HEALTH_SLOTS - PER_IP
    assert counts == {"busy": PER_IP - room, "held": room, "failed": 0}
    status, output = guarded.healthcheck()  # the server is full, but for loopback's slots
    assert status == 0, output
    assert greedy.wait(30).exit_code == 0 and other.wait(30).exit_code == 0
    per_address = f"over {PER_IP} connections from one address"
    assert wait_for_warnings(guarded, mark, f"refused ({per_address})", 10) == 10


def test_silent_and_trickling_peers_are_cut_off(guarded: ComposeStack) -> None:
    """A byte every 1.5 s defeats an idle timeout, never the lifetime; a peer that says
    nothing at all is closed after the first-byte timeout."""
    mark = guarded.log_mark()
    trickler = run_peer(guarded, "trickle", "server", str(ECHO), "1.5", "20")
    assert trickler["closed_by_server"] is True
    assert LIFETIME_S <= trickler["elapsed_s"] < LIFETIME_S + FRAME_DEADLINE_S + 2.5
    guarded.wait_for_server_event(
        mark, event="closed", reason=lambda why: why.endswith("(max lifetime)")
    )
    quiet = guarded.start_python(
        "import socket,time\n"
        f"s=socket.create_connection(('server', {ECHO}), 10)\n"
        "t=time.monotonic()\nassert s.recv(10)==b''\n"
        "print(round(time.monotonic()-t, 2))"
    )
    elapsed = float(quiet.wait(30).stdout.strip())
    assert FIRST_BYTE_S <= elapsed < FIRST_BYTE_S + 1.5
    guarded.wait_for_server_event(
        mark, event="closed", reason=f"no data within {FIRST_BYTE_S:g}s of connecting"
    )


def test_correct_pipelining_for_longer_than_the_frame_deadline_is_never_cut(
    guarded: ComposeStack,
) -> None:
    """A peer in an exchange throughout (never between frames) for over twice the frame
    deadline is not cut by it. It has to end before the lifetime plus one frame deadline (8 s
    here), when the server closes even a peer that never pauses (the trickler's test): 8
    requests 0.8 s apart take 6.4 s, which leaves 1.6 s for a busy machine's late wake-ups
    (8 requests 1 s apart ended after 8 s once, beside the other groups, and were cut)."""
    every_s = 0.8
    assert 8 * every_s + 1.5 < LIFETIME_S + FRAME_DEADLINE_S
    outcome = run_peer(guarded, "pipeline", "server", str(APP), "8", str(every_s))
    assert outcome["elapsed_s"] > 2 * FRAME_DEADLINE_S
    got = replies(outcome["received_hex"])
    assert [r.get("result") for r in got] == ["x" * 64] * 8
    assert outcome["end"] == "closed"


def test_udp_echo_cannot_loop_or_reflect(guarded: ComposeStack) -> None:
    from_echo_port = run_peer(guarded, "udp-from", "server", str(ECHO), str(ECHO), "5")
    assert from_echo_port["replies"] == 0  # another echo service: it would ping-pong forever
    privileged = guarded.start_container(
        "tools",
        ["python3", "-c", HOSTILE_SOURCE, "udp-from", "server", str(ECHO), "7", "5"],
        user="0",
        cap_add=["NET_BIND_SERVICE"],
    ).wait(60)
    assert privileged.exit_code == 0, privileged
    assert json.loads(privileged.stdout.strip().splitlines()[-1])["replies"] == 0
    burst = run_peer(guarded, "udp-from", "server", str(ECHO), "40000", "1000")
    assert UDP_RATE <= burst["replies"] <= UDP_RATE * (2 + burst["elapsed_s"])
    reasons = {e.get("reason", "") for e in guarded.server_events()}
    for why in ("source is an echo port", "source port below 1024", "over the rate per source"):
        assert any(reason.startswith(why) for reason in reasons), (why, reasons)


def test_bad_frames_do_not_amplify_into_logs_or_replies(guarded: ComposeStack) -> None:
    """300 bad frames of 60 KB each once wrote 46 MiB of logs and 5.5x replies."""
    bad = raw_frame(header(**{"content-type": ["\u00e9" * 9000]}))
    mark = guarded.log_mark()
    cases = [{"name": str(i), "port": APP, "half_close": True, **squeezed(bad)} for i in range(300)]
    outcomes = run_peer(guarded, "corpus", "server", json.dumps(cases))
    assert all(len(o["received_hex"]) // 2 <= 512 for o in outcomes)
    logged = len(guarded.server_log(mark).encode())
    print(f"300 bad frames of {len(bad)} bytes: {logged} bytes of server log")
    assert logged < 600 * 1024  # the open/close events, a few warnings and summaries
    events = guarded.server_events(mark)
    assert events and max(len(e["message"]) for e in events) < 1024  # no frame copied in


def test_healthcheck_fails_while_the_loop_is_wedged(guarded: ComposeStack) -> None:
    server = guarded.container("server")
    server.kill(signal="SIGSTOP")
    try:
        started = time.monotonic()
        status, output = guarded.healthcheck()
        assert status == 1 and "timed out" in output, output
        assert time.monotonic() - started < 3.5
    finally:
        server.kill(signal="SIGCONT")
