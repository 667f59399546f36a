"""The learning path's small programs on loopback, against the lab's server in this process
(tests/integration/test_learning.py runs each across containers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from inprocess import InProcessServer
from labtutorial import blocking, echo_client, pieces, reuse, udp_client, udp_server


@pytest.fixture(scope="module")
def lab() -> Iterator[InProcessServer]:
    with InProcessServer() as server:
        yield server


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_echo_client_sends_half_closes_and_reads_to_the_end(lab, capsys) -> None:
    assert echo_client.main(["127.0.0.1", str(lab.ports["tcp-echo"]), "hello, across"]) == 0
    out = capsys.readouterr().out
    assert "the echo matches: 'hello, across'" in out and "connected from 127.0.0.1" in out


def test_the_echo_client_says_refused_in_one_line(capsys) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connect() is refused
        assert echo_client.main(["127.0.0.1", str(port), "x"]) == 1
    assert "Connection refused" in capsys.readouterr().err


def test_the_udp_pair_echoes_a_datagram(capsys) -> None:
    port = free_udp_port()
    server = threading.Thread(target=udp_server.serve, args=("127.0.0.1", port, 1), daemon=True)
    server.start()
    assert udp_client.main(["127.0.0.1", str(port), "one datagram"]) == 0
    server.join(5)
    out = capsys.readouterr().out
    assert "udp_server: 12 bytes from 127.0.0.1" in out and "the echo matches" in out


def test_the_udp_client_gives_up_after_its_tries(capsys) -> None:
    port = free_udp_port()  # nobody there: every try times out
    assert udp_client.main(["127.0.0.1", str(port), "lost"]) == 1
    assert capsys.readouterr().out.count("no echo within") == udp_client.TRIES


def test_pieces_sums_every_recv_to_the_whole_message(lab) -> None:
    sizes = pieces.recv_sizes("127.0.0.1", lab.ports["tcp-echo"], 1 << 20)
    assert sum(sizes) == 1 << 20 and len(sizes) >= 16  # never one recv for 1 MiB


def test_send_takes_less_when_the_peer_does_not_read() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    holder = threading.Thread(target=pieces.hold, args=(port,), daemon=True)
    holder.start()
    returns = pieces.send_returns_when_ready("127.0.0.1", port)
    assert returns and sum(returns) < 64 << 20  # the buffers filled, then nothing
    assert any(sent < 1 << 20 for sent in returns), returns  # one call took only part


@pytest.mark.parametrize(("quiet", "shown"), [("", True), ("1", False)])
def test_a_step_run_by_hand_shows_loopback_clients(quiet: str, shown: bool) -> None:
    """`python3 blocking.py 127.0.0.1 PORT` on a learner's machine: their own client is shown;
    in the lab's container (LAB_QUIET_LOOPBACK=1) loopback is the health check, left out."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LAB_QUIET_LOOPBACK": quiet, "PYTHONUNBUFFERED": "1"}
    step = subprocess.Popen(
        [sys.executable, blocking.__file__, "127.0.0.1", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert step.stdout is not None
        assert "listening" in step.stdout.readline()
        assert echo_client.main(["127.0.0.1", str(port), "by hand"]) == 0
        assert echo_client.main(["127.0.0.1", str(port), "again"]) == 0
    finally:
        step.terminate()
        out, _ = step.communicate(timeout=10)
    assert ("connected by 127.0.0.1 port" in out) is shown, out


def test_restarting_without_so_reuseaddr_meets_eaddrinuse(capsys) -> None:
    """docs/learn.md's classic mistake: the server closed first (TIME_WAIT), then restarted."""
    assert reuse.main([]) == 0
    without, with_it = capsys.readouterr().out.splitlines()
    assert "bind() failed: [Errno 98] Address already in use" in without
    assert with_it.endswith("listening again at once")
