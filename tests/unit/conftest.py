"""Unit fixtures: a real server process on loopback with ephemeral ports (no Docker)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator

import pytest
from lab import registry
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

START_TIMEOUT_S = 10
SOCKET_TIMEOUT_S = 5


def connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A client socket to a local server, with a timeout (every socket in a test has one)."""
    return socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes its side."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


class LocalServer:
    """``python3 -m labserver`` in a subprocess; its log lines arrive on a queue."""

    def __init__(self, code: str | None = None, **settings: str) -> None:
        """``code``: Python run before the server's ``main()`` in its process (to inject a
        fault into it, say); without it, plain ``python3 -m labserver``."""
        fd, self.ports_file = tempfile.mkstemp(prefix="labserver-ports-")
        os.close(fd)
        os.unlink(self.ports_file)  # the server writes it once it listens
        self.env = {
            **os.environ,
            **{row.env: "0" for row in registry.LISTENERS},
            "LAB_PORTS_FILE": self.ports_file,
            "LAB_LOG_LEVEL": "DEBUG",
            "LAB_QUIET_LOOPBACK": "1",  # as in compose.yaml: loopback lines at DEBUG
            **settings,
        }
        argv = (
            ["-m", "labserver"]
            if code is None
            else ["-c", f"{code}\nfrom labserver.__main__ import main\nraise SystemExit(main())"]
        )
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.ports: dict[str, int] = Retrying(
            stop=stop_after_delay(START_TIMEOUT_S),
            wait=wait_fixed(0.02),
            reraise=True,
            retry=retry_if_exception_type(FileNotFoundError),
        )(self._read_ports)

    def _read_ports(self) -> dict[str, int]:
        """The ports the server says it bound (``LAB_PORTS_FILE``), once it has written them."""
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the server exited with {self.proc.returncode}: {list(self.lines.queue)[-20:]}"
            )
        with open(self.ports_file) as ports:
            return json.load(ports)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text: str, timeout_s: float = START_TIMEOUT_S) -> str:
        """The next log line containing ``text`` (earlier lines are kept in ``seen``)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(
                    f"no log line with {text!r} within {timeout_s}s; saw {self.seen[-20:]}"
                ) from None
            self.seen.append(line)
            if text in line:
                return line

    def terminate(self, timeout_s: float = 10) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if os.path.exists(self.ports_file):
            os.unlink(self.ports_file)


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    server = LocalServer(LAB_SHUTDOWN_GRACE_S="3")
    yield server
    server.kill()


@pytest.fixture
def make_server() -> Iterator:
    started: list[LocalServer] = []

    def make(code: str | None = None, **settings: str) -> LocalServer:
        server = LocalServer(code, **settings)
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()
