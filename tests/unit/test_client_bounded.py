"""The client against servers that misbehave (on loopback, a thread each): whatever a server does,
the client ends, within its deadlines, with one line and a documented exit status; never a
traceback, never unbounded memory, never a connection per request."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from framing_cases import content_frame
from lab import framing
from lab.appconn import ErrorReply, ServerConnection

TIMEOUT_S = 5.0
Behaviour = Callable[[socket.socket], None]


class HostileServer:
    """Accepts on loopback and runs ``behaviour`` on every connection, in a thread each; counts
    the connections it got."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.behaviour = behaviour
        self.connections = 0
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(TIMEOUT_S)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.behaviour(conn)

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def hostile() -> Iterator[Callable[[Behaviour], HostileServer]]:
    made: list[HostileServer] = []

    def make(behaviour: Behaviour) -> HostileServer:
        made.append(HostileServer(behaviour))
        return made[-1]

    yield make
    for server in made:
        server.close()


def client(server: HostileServer, *args: str, within_s: float = 30) -> tuple[int, dict, str, float]:
    """``labclient ARGS --json`` against the server: exit status, JSON line, stderr, seconds."""
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "labclient",
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(server.port),
            "--deadline",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=within_s,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.strip().splitlines()
    return proc.returncode, json.loads(lines[-1]) if lines else {}, proc.stderr, elapsed


def read_request(conn: socket.socket) -> None:
    conn.recv(65536)


def reply_with(wire: bytes) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(wire)

    return behaviour


def test_a_reply_of_escaped_quotes_is_read_in_linear_time(hostile) -> None:
    """The old shape check took many seconds over this; the client must not."""
    server = hostile(reply_with(content_frame(b'{"result": "' + b'\\"' * 200_000)))
    code, out, err, elapsed = client(server, "app", "echo", "x", "--timeout", "2")
    assert code == 5 and not out["ok"], err  # the reply is cut short: a protocol error
    assert elapsed < 5


def test_extra_reply_frames_are_no_crash(hostile) -> None:
    extra = ServerConnection().send(ErrorReply("x", "y"))
    server = hostile(reply_with(framing.encode_json({"result": "a"}) * 3 + extra))
    code, _, err, _ = client(server, "app", "echo", "a", "--connections", "2")
    assert code in (0, 5), err


def test_a_reset_right_after_connect_is_a_lost_connection(hostile) -> None:
    def reset(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = hostile(reset)
    for command in (["echo"], ["greet"], ["app", "whoami"], ["raw", "--text", "hi"]):
        code, _, err, _ = (
            client(server, *command, "--retries", "0")
            if command[0] != "raw"
            else client(server, *command)
        )
        assert code in (0, 3), (command, err)  # raw reports what it saw; the rest: exit 3
        assert code == 0 or "connection lost" in err or "reset" in err, err


def endless(conn: socket.socket) -> None:
    chunk = os.urandom(1 << 16)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        conn.sendall(chunk)


def test_an_endless_stream_is_read_with_a_bound(hostile) -> None:
    server = hostile(endless)
    code, out, err, elapsed = client(server, "raw", "--text", "hi")
    assert code == 0 and out["received"] == 1 << 20, err
    assert "stopped reading after 1048576 bytes" in out["stopped"]
    code, out, err, elapsed = client(server, "echo", "--size", "1KiB", "--retries", "0")
    assert code == 6 and elapsed < 10, err  # more came back than was sent: not an echo


def test_an_endless_reply_frame_is_refused_at_its_header(hostile) -> None:
    header = json.dumps(
        {
            "byteorder": "big",
            "content-type": "text/json",
            "content-encoding": "utf-8",
            "content-length": 1 << 40,
        }
    ).encode()

    def a_header_then_forever(conn: socket.socket) -> None:
        reply_with(struct.pack(">H", len(header)) + header)(conn)
        endless(conn)

    server = hostile(a_header_then_forever)
    code, _, err, _ = client(server, "app", "whoami")
    assert code == 5 and ("content-too-large" in err or "exceeds the limit" in err), err


def trickle(conn: socket.socket) -> None:
    for byte in b"Hello from a trickle":
        conn.sendall(bytes([byte]))
        time.sleep(1.5)


@pytest.mark.parametrize("command", [["greet"], ["app", "whoami"], ["raw", "--text", "hi"]])
def test_a_trickling_server_meets_the_overall_deadline(hostile, command: list[str]) -> None:
    server = hostile(trickle)
    code, out, err, elapsed = client(
        server,
        *command,
        "--timeout",
        "3",
        "--max-time",
        "4",
        *([] if command[0] == "raw" else ["--retries", "0"]),
    )
    assert elapsed < 8, f"{command}: {elapsed:.1f}s"
    if command[0] == "raw":
        assert out["stopped"] == "stopped after 4s in all"
    else:
        assert code == 4 and "not done after 4s in all" in err, err


@pytest.mark.parametrize("pipeline", ["1000", "50000"])  # 50,000: still sending when reset
def test_a_budget_cut_ends_the_command_instead_of_a_connection_per_request(
    hostile, pipeline: str
) -> None:
    """The server answers, says why it stops and closes with our requests unread, so the
    kernel resets: the client still reads what came before the reset (it once reported only
    "connection lost", whenever the reset hit it while it was sending)."""
    cut = ServerConnection().send(ErrorReply("memory-budget", "the buffers are full"))
    server = hostile(reply_with(framing.encode_json({"result": "a #0"}) + cut))
    code, _, err, _ = client(server, "app", "echo", "a", "--pipeline", pipeline, "--retries", "0")
    assert code == 5 and "memory-budget" in err, err
    assert server.connections == 1


def test_echo_text_prints_the_echo_and_a_reset_after_it_loses_nothing(hostile) -> None:
    def echo_then_reset(conn: socket.socket) -> None:
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        conn.sendall(data)
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = hostile(echo_then_reset)
    code, out, err, _ = client(server, "echo", "--text", "héllo, world", "--retries", "0")
    assert code == 0, err
    assert out["text"] == "héllo, world" and out["digest_ok"], out

    def echo_half_then_reset(conn: socket.socket) -> None:
        data = conn.recv(65536)
        conn.sendall(data[:3])
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = hostile(echo_half_then_reset)
    code, _, err, _ = client(server, "echo", "--text", "hello, world", "--retries", "0")
    assert code != 0, err  # a reset before the whole echo is a failure
