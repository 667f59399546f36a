"""docs/errors.md's rows marked tested, provoked on loopback: each must end with the exit status
the table gives."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from labstack import ROOT

DOC = (ROOT / "docs" / "errors.md").read_text()


def documented_exit(errno_name: str) -> int:
    """The exit status in the row that names ``errno_name`` (and is marked tested)."""
    for row in DOC.splitlines():
        if errno_name in row and row.rstrip().endswith("| tested |"):
            return int(re.findall(r"exits \*\*(\d+)\*\*", row)[0])
    raise AssertionError(f"no tested row for {errno_name} in docs/errors.md")


def run(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def echo_client(port: int, *options: str) -> subprocess.CompletedProcess:
    """``labclient echo`` against a port on this host's loopback."""
    return run("labclient", "echo", "--host", "127.0.0.1", "--port", str(port), *options)


@pytest.fixture
def listener() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """A loopback server that does ``behaviour`` with each connection; its port."""
    made: list[socket.socket] = []

    def start(behaviour: Callable[[socket.socket], None]) -> int:
        srv = socket.create_server(("127.0.0.1", 0))
        srv.settimeout(30)
        made.append(srv)

        def serve() -> None:
            try:
                while True:
                    conn, _ = srv.accept()
                    behaviour(conn)
            except OSError:
                return

        threading.Thread(target=serve, daemon=True).start()
        return srv.getsockname()[1]

    yield start
    for srv in made:
        srv.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free again once closed: nothing listens there


def test_refused(listener) -> None:
    proc = echo_client(closed_port(), "--deadline", "0.5")
    assert proc.returncode == documented_exit("ECONNREFUSED"), proc.stderr
    assert "Connection refused" in proc.stderr


def test_reset(listener) -> None:
    def reset(conn: socket.socket) -> None:
        conn.recv(10)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    port = listener(reset)
    proc = echo_client(port, "--size", "64KiB", "--retries", "0")
    assert proc.returncode == documented_exit("ECONNRESET"), proc.stderr
    # "Connection reset by peer" on the read; "Broken pipe" or "Transport endpoint is not
    # connected" when the reset lands while the client is still sending or half-closing
    assert "connection lost" in proc.stderr, proc.stderr


def test_silent_peer(listener) -> None:
    held: list[socket.socket] = []
    port = listener(held.append)  # accepts, never answers
    proc = echo_client(port, "--timeout", "1", "--retries", "0")
    assert proc.returncode == documented_exit("socket timeout set"), proc.stderr
    assert "no progress for 1s" in proc.stderr
    for conn in held:
        conn.close()


def test_address_in_use() -> None:
    with socket.socket(socket.AF_INET6) as taken:
        taken.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        taken.bind(("::", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = run(
            "labserver",
            env={
                "LAB_ECHO_PORT": port,
                "LAB_UDP_PORT": "0",
                "LAB_APP_PORT": "0",
                "LAB_GREET_PORT": "0",
            },
        )
    assert proc.returncode == documented_exit("EADDRINUSE"), proc.stdout + proc.stderr
    assert "Address already in use" in proc.stdout + proc.stderr


def test_address_not_here() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no host: bind() fails at once, nothing is sent anywhere.
    proc = run("labserver", env={"LAB_BIND": "192.0.2.1"})
    assert proc.returncode == documented_exit("EADDRNOTAVAIL"), proc.stdout + proc.stderr
    assert "Cannot assign requested address" in proc.stdout + proc.stderr
