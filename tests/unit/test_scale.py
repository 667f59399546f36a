"""What a connection costs the server while it holds it, and what housekeeping costs a turn:
both bounded where they are spent (docs/scale.md)."""

from __future__ import annotations

import gc
import logging
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from inprocess import InProcessServer
from labserver import loop as loop_module

IDLE = 200  # connections opened by the tests below (loopback: one address holds them)


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def counting_checks(server: InProcessServer, per_turn: list[int]) -> None:
    """Count the connections housekeeping looks at, turn by turn."""
    original = server.loop._check

    def check(*args: Any) -> None:
        per_turn[-1] += 1
        original(*args)

    server.loop._check = check  # type: ignore[method-assign,assignment]


def turn(server: InProcessServer, per_turn: list[int], seconds: float) -> None:
    """The loop turned by hand for ``seconds``, a count of checks per turn."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        per_turn.append(0)
        server.loop.run_once(timeout=0.02)


def test_connections_that_are_not_due_are_not_looked_at() -> None:
    """Idle connections with minutes to go cost housekeeping nothing (a timing wheel, not a
    scan of every connection every second)."""
    server = InProcessServer(max_connections_per_ip=0)
    try:
        clients = [server.connect("tcp-echo") for _ in range(IDLE)]
        per_turn: list[int] = []
        turn(server, per_turn, 0.5)
        assert len(server.loop.connections) == IDLE
        counting_checks(server, per_turn)
        turn(server, per_turn, 2.5)  # two housekeeping seconds at least
        assert sum(per_turn) == 0, f"{sum(per_turn)} checks of {IDLE} connections not due"
        for client in clients:
            client.close()
    finally:
        server.stop()


def test_a_second_in_which_many_come_due_is_spread_over_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cap = 16
    monkeypatch.setattr(loop_module, "CHECKS_PER_TURN", cap)
    server = InProcessServer(max_connections_per_ip=0, idle_timeout_s=1.0)
    try:
        clients = [server.connect("tcp-echo") for _ in range(IDLE)]
        per_turn: list[int] = []
        counting_checks(server, per_turn)
        until = time.monotonic() + 5
        while server.loop.connections or time.monotonic() < until - 4:
            assert time.monotonic() < until, f"{len(server.loop.connections)} still open"
            turn(server, per_turn, 0.05)
        assert server.loop.closed_for["idle for 1s"] == IDLE  # every one closed, on time
        assert max(per_turn) == cap, per_turn  # the cap was reached, and held
        for client in clients:
            client.close()
    finally:
        server.stop()


def test_an_idle_connection_costs_the_server_under_1_kib_of_python_objects() -> None:
    """What the server allocates to hold an idle echo connection, by tracemalloc (the kernel's
    socket buffers come on top: docs/scale.md measures RSS across hosts)."""
    server = InProcessServer(max_connections_per_ip=0)
    try:
        warm = [server.connect("tcp-echo") for _ in range(8)]
        per_turn: list[int] = []
        turn(server, per_turn, 0.3)  # what is set up once is set up
        clients = [server.connect("tcp-echo") for _ in range(IDLE)]  # in the backlog
        gc.collect()
        gc.disable()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            while len(server.loop.connections) < IDLE + len(warm):
                turn(server, per_turn, 0.05)
            per_connection = (tracemalloc.get_traced_memory()[0] - before) / IDLE
        finally:
            tracemalloc.stop()
            gc.enable()
        print(f"{per_connection:.0f} bytes of Python objects per idle connection")
        assert per_connection < 1024
        for client in clients + warm:
            client.close()
    finally:
        server.stop()
