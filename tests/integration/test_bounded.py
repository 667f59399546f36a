"""Bounded by construction, across containers: every class of attack that once found a cost
nothing accounted for, against a server under compose.yaml's limits (128m).

Each attack runs from a container of its own for a few seconds while a bystander in another
container sends a fresh app request and a fresh echo every 0.2 s. Each test asserts: the same
server process throughout (no restart, no OOM kill), its RSS below the memory budget plus the
interpreter's own share, the bystander answered within 1 s every time, and, once the attack is
over, the memory given back. docs/robustness.md quotes the figures these tests print. The
limits that time nothing (an echo loop, an IPv6 host's cap, the memory budget under held
frames, SIGTERM during a slow echo) are in test_limits.py, beside the other groups.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import hostile_peers
import pytest
from lab import registry
from labstack import ComposeStack, NotYet, wait_for

# Bystanders' waits are timed here: make test runs this module alone (marker `alone`), as CPU
# taken by other groups would be counted against the server.
pytestmark = [pytest.mark.slow, pytest.mark.alone]

HOSTILE_SOURCE = Path(hostile_peers.__file__).read_text()
ATTACK_S = 6
BYSTANDER_WAIT_S = 1.0  # the longest a fresh request may wait while an attack goes on
# What RSS may reach: the budget (a third of 128 MiB) for what peers make us hold, and this much
# for the interpreter and one request's work at a time (a 512 KiB JSON text parsed).
RSS_MARGIN = 40 << 20
ECHO, APP, UDP = (registry.default_port(name) for name in ("tcp-echo", "app", "udp-echo"))


@pytest.fixture(autouse=True)
def same_process_survives(bounded: ComposeStack) -> Iterator[None]:
    yield
    assert bounded.process_identity() == bounded.first_process, "the server process died"
    assert "Traceback" not in bounded.server_log()


def peer_json(run: object, timeout_s: float = 90) -> dict:
    result = run.wait(timeout_s)  # type: ignore[attr-defined]
    assert result.exit_code == 0, result
    return json.loads(result.stdout.strip().splitlines()[-1])


class RssSampler(threading.Thread):
    """The server's RSS every 0.25 s, from outside (docker top), while an attack runs."""

    def __init__(self, stack: ComposeStack) -> None:
        super().__init__(daemon=True)
        self.stack, self.peak, self.stop = stack, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.peak = max(self.peak, self.stack.memory_bytes("server"))


def under_attack(stack: ComposeStack, *attacker: str) -> tuple[dict, dict, int]:
    """Run a hostile peer with a bystander beside it: (its result, the bystander's, peak RSS)."""
    sampler = RssSampler(stack)
    sampler.start()
    try:
        # From another host: its own IPv4 address. (Over IPv6 every container of the lab's
        # network is in one /64, which the per-address cap counts as one peer.)
        bystander = stack.start_python(
            HOSTILE_SOURCE, "watch", stack.ip_of("server", 4), str(ATTACK_S)
        )
        attack = stack.start_python(HOSTILE_SOURCE, *attacker)
        outcome, watched = peer_json(attack), peer_json(bystander)
    finally:
        sampler.stop.set()
        sampler.join(5)
    return outcome, watched, sampler.peak


ATTACKS = {  # name: (the peer's arguments after "attack", connections at once, whether what
    #            it made the server hold must be given back at once: buffers, not parsing work)
    "escaped quotes in a 64 KB header (was 30 s of CPU each)": ("escaped-quotes", 4, True),
    "500 KiB of a frame, then a reset (was held until a collection)": ("reset-mid-frame", 40, True),
    "complete 512 KiB frames that are not JSON": ("not-json", 40, True),
    "the costliest legal requests, back to back (stalled others 2 s)": ("costly", 16, False),
    "pipelined small requests, every reply read (grew 180 MiB in 4 s)": ("pipeline-flood", 4, True),
    "an accept storm from one address (others waited 1.2 s)": ("accept-storm", 16, True),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_attack_leaves_others_served_and_memory_bounded(
    bounded: ComposeStack, budget: int, name: str
) -> None:
    kind, connections, buffers = ATTACKS[name]
    before = bounded.memory_bytes("server")
    port = ECHO if kind == "accept-storm" else APP
    outcome, watched, peak = under_attack(
        bounded, "attack", kind, "server", str(port), str(ATTACK_S), str(connections)
    )
    print(
        f"{name}: {outcome['connections']} attacking connections; RSS {before >> 20} MiB "
        f"before, {peak >> 20} MiB at most (budget {budget >> 20} MiB); the bystander "
        f"waited at most {watched['worst_app_s'] * 1000:.0f} ms (app) and "
        f"{watched['worst_echo_s'] * 1000:.0f} ms (echo) over {watched['requests']} requests"
    )
    assert outcome["connections"] >= connections  # the attack really ran
    assert not watched["failed"], watched["failed"]
    assert watched["worst_app_s"] < BYSTANDER_WAIT_S and watched["worst_echo_s"] < BYSTANDER_WAIT_S
    assert peak < budget + RSS_MARGIN
    if not buffers:  # 22,000 floats a request: what the allocator keeps of that is its own
        return

    def given_back() -> int:
        now = bounded.memory_bytes("server")
        if now - before > 8 << 20:
            raise NotYet(f"{(now - before) >> 20} MiB still held")
        return now

    wait_for("the server to give its memory back", given_back, 15, every_s=0.5)
