"""The server as a process on loopback: shutdown, capacity, bad settings, stray clients."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import connect, read_all

TIMEOUT_S = 5


def test_sigterm_with_idle_clients_exits_0_promptly(local_server) -> None:
    idle = [connect(local_server.ports["tcp-echo"]) for _ in range(3)]
    local_server.expect("conn=3 open")
    started = time.monotonic()
    assert local_server.terminate() == 0
    assert time.monotonic() - started < 2
    for sock in idle:
        assert read_all(sock) == b""  # closed cleanly, not reset
        sock.close()
    local_server.expect("stopped: 3 connections served")


def test_sigterm_lets_an_in_flight_echo_finish(local_server) -> None:
    payload = os.urandom(512 << 10)
    sock = connect(local_server.ports["tcp-echo"])
    sock.sendall(payload[:1000])
    first = b""
    while len(first) < 1000:  # the exchange is under way: the first part came back
        first += sock.recv(1000 - len(first))
    local_server.proc.send_signal(15)
    local_server.expect("no longer accepting; 1 connection(s) in flight")
    sock.sendall(payload[1000:])
    sock.shutdown(socket.SHUT_WR)
    echoed = first + read_all(sock)
    sock.close()
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
    assert local_server.proc.wait(timeout=TIMEOUT_S) == 0


def test_new_connections_refused_after_sigterm(local_server) -> None:
    busy = connect(local_server.ports["tcp-echo"])
    busy.sendall(b"x")
    local_server.proc.send_signal(15)
    local_server.expect("no longer accepting")
    try:
        probe = connect(local_server.ports["greeting"])
    except ConnectionRefusedError:
        pass
    else:
        assert probe.recv(100) == b""  # raced the close: at most an empty, closed connection
        probe.close()
    busy.close()
    assert local_server.proc.wait(timeout=TIMEOUT_S) == 0


def test_over_capacity_is_told_and_counted(make_server) -> None:
    server = make_server(LAB_MAX_CONNECTIONS="2")
    held = [connect(server.ports["tcp-echo"]) for _ in range(2)]
    server.expect("conn=2 open")
    with connect(server.ports["greeting"]) as extra:
        assert b"busy" in read_all(extra)
    server.expect("refused peer=127.0.0.1")
    for sock in held:
        sock.sendall(b"still served")
        assert sock.recv(100) == b"still served"
        sock.close()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("LAB_MAX_CONNECTIONS", "lots", "LAB_MAX_CONNECTIONS='lots' is not a valid int"),
        (
            "LAB_SERVER",
            "forking",
            "LAB_SERVER='forking' is not one of lab, blocking, threaded, multiconn",
        ),
    ],
)
def test_bad_setting_is_one_line_and_exit_2(setting: str, value: str, message: str) -> None:
    env = {**os.environ, setting: value}
    proc = subprocess.run(
        [sys.executable, "-m", "labserver"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"labserver: {message}"


def test_reset_mid_exchange_is_one_log_line_and_others_unaffected(local_server) -> None:
    rude = connect(local_server.ports["tcp-echo"])
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    rude.sendall(b"partial")
    rude.close()  # linger 0: RST
    local_server.expect("closed peer=127.0.0.1")
    with connect(local_server.ports["tcp-echo"]) as polite:
        polite.sendall(b"hello")
        assert polite.recv(100) == b"hello"
    assert not any("Traceback" in line for line in local_server.seen)


def test_healthcheck_reports_healthy_then_unhealthy(local_server) -> None:
    env = {
        **os.environ,
        "LAB_ECHO_PORT": str(local_server.ports["tcp-echo"]),
        "LAB_UDP_PORT": str(local_server.ports["udp-echo"]),
        "LAB_APP_PORT": str(local_server.ports["app"]),
        "LAB_GREET_PORT": str(local_server.ports["greeting"]),
    }
    check = [sys.executable, "-m", "labserver", "--healthcheck"]
    ok = subprocess.run(check, env=env, capture_output=True, text=True, timeout=10, check=False)
    assert ok.returncode == 0, ok.stdout
    local_server.terminate()
    bad = subprocess.run(check, env=env, capture_output=True, text=True, timeout=10, check=False)
    assert bad.returncode == 1 and bad.stdout.startswith("unhealthy: ")


def test_the_health_check_imports_only_what_its_probes_need(local_server) -> None:
    """The engine runs it every second in every server container: it must not pay for the
    server's loop and command line (in a container: 68 ms of CPU a probe with them, 40 without)."""
    env = {
        **os.environ,
        "LAB_ECHO_PORT": str(local_server.ports["tcp-echo"]),
        "LAB_UDP_PORT": str(local_server.ports["udp-echo"]),
        "LAB_APP_PORT": str(local_server.ports["app"]),
        "LAB_GREET_PORT": str(local_server.ports["greeting"]),
    }
    code = (
        "import sys\nfrom labserver.__main__ import main\nstatus = main(['--healthcheck'])\n"
        "print(status, *sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('labserver', 'argparse')))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    status, *modules = run.stdout.split("\n")[-2].split()
    assert status == "0", run.stdout + run.stderr
    lean = {"labserver", "labserver.__main__", "labserver.config", "labserver.health"}
    assert set(modules) == lean


@pytest.mark.parametrize("spelling", ["--healthcheck", "--health"])
def test_the_health_check_refuses_bad_settings_in_one_line(spelling: str) -> None:
    env = {**os.environ, "LAB_LOG_LEVEL": "loud"}
    run = subprocess.run(
        [sys.executable, "-m", "labserver", spelling],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "labserver: LAB_LOG_LEVEL='loud' is not one of DEBUG, INFO, WARNING, ERROR"
    ]
