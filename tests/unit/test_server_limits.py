"""The server process on loopback under a peer that misbehaves, and with a bug injected into it.

Every test ends by showing the same process still serving: nothing here may take the loop down.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import LocalServer, connect, read_all
from lab import framing

TIMEOUT_S = 5


def closed_by_server(sock: socket.socket) -> bool:
    """Does the server close this connection (an end of stream, or a reset) within the
    timeout? Whatever it sends first is read and ignored."""
    try:
        read_all(sock)
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def still_serves(server: LocalServer) -> None:
    """The same process answers an echo and a framed request."""
    assert server.proc.poll() is None, "the server process is gone"
    with connect(server.ports["tcp-echo"]) as sock:
        sock.sendall(b"still here")
        assert sock.recv(100) == b"still here"
    with connect(server.ports["app"]) as sock:
        sock.sendall(framing.encode_json({"action": "reverse", "value": "abc"}))
        decoder = framing.MessageDecoder()
        while not (replies := list(decoder.messages())):
            decoder.feed(sock.recv(65536))
        assert replies[0].value == {"result": "cba"}


def error_codes(data: bytes) -> list[str]:
    decoder = framing.MessageDecoder(1 << 24)
    decoder.feed(data)
    return [m.value["error"]["code"] for m in decoder.messages() if "error" in m.value]


# -- a bug in one connection's callbacks -------------------------------------------------------
INJECT = """
import labserver.app as app, labserver.protocols as protocols

def boom(original):
    def hook(self, *args):
        if self.transport is not None and self.transport.rx and {trigger}:
            raise RuntimeError("injected bug in {hook}")
        return original(self, *args)
    return hook

{cls}.{hook} = boom({cls}.{hook})
"""
BUGS = {  # where the bug is, and what makes it fire
    "data_received": ("protocols.EchoProtocol", "bytes(args[0][:4]) == b'BOOM'"),
    "eof_received": ("protocols.EchoProtocol", "self.transport.rx == 1"),
    "check_deadline": ("app.AppProtocol", "self.app.in_progress"),
    "answer": ("app.AppProtocol", "args[0].action == 'boom'"),
}


@pytest.mark.parametrize("hook", sorted(BUGS))
def test_a_bug_in_one_connection_closes_it_and_the_loop_serves_the_rest(
    make_server, hook: str
) -> None:
    cls, trigger = BUGS[hook]
    # check_deadline is called when a started frame's deadline comes (housekeeping checks a
    # connection when it is due, not every second): a short deadline brings it soon.
    settings = {"LAB_FRAME_DEADLINE_S": "1"} if hook == "check_deadline" else {}
    server = make_server(INJECT.format(cls=cls, hook=hook, trigger=trigger), **settings)
    bystander = connect(server.ports["tcp-echo"])
    bystander.sendall(b"before")
    assert bystander.recv(100) == b"before"
    if hook == "data_received":
        victim = connect(server.ports["tcp-echo"])
        victim.sendall(b"BOOM")
    elif hook == "eof_received":
        victim = connect(server.ports["tcp-echo"])
        victim.sendall(b"x")
        assert victim.recv(10) == b"x"
        victim.shutdown(socket.SHUT_WR)
    elif hook == "check_deadline":  # called by housekeeping when the frame's deadline comes
        victim = connect(server.ports["app"])
        victim.sendall(b"\x00")
    else:
        victim = connect(server.ports["app"])
        victim.sendall(framing.encode_json({"action": "boom"}))
    line = server.expect("internal error in ")
    assert f"injected bug in {hook}" in line and "conn=" in line and "peer=127.0.0.1:" in line
    server.expect("reason=internal error")
    assert closed_by_server(victim)
    victim.close()
    bystander.sendall(b"after")
    assert bystander.recv(100) == b"after"
    bystander.close()
    still_serves(server)
    assert sum("Traceback" in line for line in server.seen) <= 1  # logged once, with its stack
    assert server.terminate() == 0
    server.expect("1 internal errors")


# -- memory ----------------------------------------------------------------------------------
def test_over_the_memory_budget_the_connections_holding_most_are_closed(make_server) -> None:
    budget = 3 << 20
    server = make_server(LAB_MEMORY_BUDGET_BYTES=str(budget), LAB_MAX_CONTENT_BYTES=str(1 << 20))
    server.expect("memory budget for buffered bytes: 3145728")
    holders = []
    # 3,200 KiB in all: one over the budget. Once the largest (1000 KiB) is gone, each of the
    # others can finish its 1 MiB frame (and is freed once answered) within the budget.
    for size in (200 << 10, 300 << 10, 1000 << 10, 900 << 10, 800 << 10):
        sock = connect(server.ports["app"])
        head = framing.encode_message(b"\0" * (1 << 20), "x", "x")[: -(1 << 20)]
        sock.sendall(head + b"\0" * size)  # a frame of 1 MiB, left unfinished
        holders.append((size, sock))
        time.sleep(0.2)  # let the server read it before the next one arrives
    line = server.expect("over the memory budget of 3145728: closing it")
    holds = re.search(r"holds (\d+) bytes", line)
    assert holds is not None, line
    held = int(holds.group(1))
    assert 1000 << 10 < held < 1100 << 10  # the largest holder (1000 KiB and its header) first
    closed = {size: sock for size, sock in holders if size == 1000 << 10}
    assert error_codes(read_all(closed[1000 << 10])) == ["memory-budget"]
    for size, sock in holders:  # the others keep their connections and finish their frames
        if size != 1000 << 10:
            sock.sendall(b"\0" * ((1 << 20) - size))
            decoder = framing.MessageDecoder()
            while not (replies := list(decoder.messages())):
                decoder.feed(sock.recv(65536))
            assert replies[0].content.startswith(b"First 10 bytes of request: ")
        sock.close()
    still_serves(server)


# -- time limits ------------------------------------------------------------------------------
def test_a_client_that_never_speaks_is_closed_after_the_first_byte_timeout(make_server) -> None:
    server = make_server(LAB_FIRST_BYTE_TIMEOUT_S="1")
    silent = connect(server.ports["tcp-echo"])
    talker = connect(server.ports["tcp-echo"])
    talker.sendall(b"hi")
    assert talker.recv(10) == b"hi"
    started = time.monotonic()
    assert read_all(silent) == b""
    assert 0.9 <= time.monotonic() - started < 3
    server.expect("reason=no data within 1s of connecting")
    time.sleep(1.5)  # the one that spoke is still open
    talker.sendall(b"again")
    assert talker.recv(10) == b"again"
    talker.close()
    still_serves(server)


def test_a_trickle_is_cut_at_the_max_lifetime(make_server) -> None:
    """1 byte every 0.4 s beats any idle timeout; the lifetime ends it, between exchanges or,
    for a peer never quiet when we look, a frame deadline later."""
    server = make_server(LAB_MAX_LIFETIME_S="2", LAB_IDLE_TIMEOUT_S="1", LAB_FRAME_DEADLINE_S="1")
    sock = connect(server.ports["tcp-echo"])
    started = time.monotonic()
    with pytest.raises(OSError):
        for _ in range(20):
            sock.sendall(b".")
            if sock.recv(10) == b"":
                raise ConnectionResetError("closed")
            time.sleep(0.4)
    assert 2 <= time.monotonic() - started < 4.5
    server.expect("reason=open for 2s (max lifetime)")
    sock.close()
    still_serves(server)


# -- UDP ----------------------------------------------------------------------------------------
def test_udp_echo_is_rate_limited_per_source_and_drops_are_counted(make_server) -> None:
    server = make_server(LAB_UDP_RATE_PER_SOURCE="50")
    port = server.ports["udp-echo"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        started = time.monotonic()
        for i in range(300):  # 1,000 a second: no socket buffer overflows, the rate does
            sock.sendto(b"%d" % i, ("127.0.0.1", port))
            time.sleep(0.001)
        elapsed = time.monotonic() - started
        echoed = 0
        try:
            while True:
                sock.recv(100)
                echoed += 1
        except TimeoutError:
            pass
    assert 50 <= echoed <= 50 + 50 * elapsed + 1  # the burst, plus what refilled meanwhile
    server.expect("over the rate per source")
    assert server.terminate() == 0
    summary = server.expect("stopped: ")
    counted = re.search(
        r"(\d+) datagrams echoed, (\d+) dropped \(over the rate per source: "
        r"(\d+)\)",
        summary,
    )
    assert counted is not None, summary
    assert int(counted.group(1)) == echoed and int(counted.group(2)) == 300 - echoed


# -- log lines ---------------------------------------------------------------------------------
def test_a_flood_of_bad_frames_is_summarised_not_logged_line_by_line(make_server) -> None:
    server = make_server()
    for _ in range(40):
        with connect(server.ports["app"]) as sock:
            sock.sendall(b"\x00\x05[[[[[")
            assert error_codes(read_all(sock)) == ["header-not-json"]
    assert server.terminate() == 0
    server.expect("stopped: ")
    lines = [line for line in server.seen if "bad frame from peer=" in line]
    summaries = [
        int(n)
        for line in server.seen
        for n in re.findall(r"suppressed (\d+) more bad-frame warning", line)
    ]
    assert len(lines) <= 10 and len(lines) + sum(summaries) == 40


# -- health check ----------------------------------------------------------------------------
def _healthcheck(server: LocalServer, **settings: str) -> subprocess.CompletedProcess:
    env = {
        **server.env,
        "LAB_ECHO_PORT": str(server.ports["tcp-echo"]),
        "LAB_UDP_PORT": str(server.ports["udp-echo"]),
        "LAB_APP_PORT": str(server.ports["app"]),
        "LAB_GREET_PORT": str(server.ports["greeting"]),
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", "labserver", "--healthcheck"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1", "0.0.0.0"])
def test_healthcheck_probes_the_address_the_server_is_bound_to(make_server, bind: str) -> None:
    if bind == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    server = make_server(LAB_BIND=bind)
    result = _healthcheck(server, LAB_BIND=bind)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith(f"answered on {bind.replace('0.0.0.0', '127.0.0.1')}")


def test_healthcheck_fails_while_the_loop_is_wedged(make_server) -> None:
    """The kernel still accepts connections for a stopped process: only a real exchange tells."""
    server = make_server()
    assert _healthcheck(server).returncode == 0
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = _healthcheck(server)
        assert result.returncode == 1 and "timed out" in result.stdout, result.stdout
        assert time.monotonic() - started < 3.5  # within compose's 3 s timeout, with start-up
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert _healthcheck(server).returncode == 0


# -- the client against a hostile server -------------------------------------------------------
def test_client_meets_a_deeply_nested_reply_with_exit_5_not_a_traceback() -> None:
    nested = b'{"result":' + b"[" * 5000 + b"]" * 5000 + b"}"
    reply = framing.encode_message(nested, framing.JSON_TYPE, "utf-8")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT_S)

        def serve() -> None:
            with listener.accept()[0] as conn:
                conn.settimeout(TIMEOUT_S)
                conn.recv(65536)
                conn.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "labclient",
                "app",
                "echo",
                "x",
                "--host",
                "127.0.0.1",
                "--port",
                str(listener.getsockname()[1]),
                "--deadline",
                "2",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["ok"] is False
    assert "too-deep" in proc.stderr or "nested deeper" in proc.stderr


# -- file descriptors --------------------------------------------------------------------------
def test_out_of_file_descriptors_pauses_accepting_and_recovers(make_server) -> None:
    """More clients than descriptors: the server pauses accepting for a moment (one warning),
    keeps its own sockets working, and serves again once clients go."""
    server = make_server(
        "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))",
        LAB_MAX_CONNECTIONS="1000",
    )
    clients = []
    for _ in range(60):  # more than the 48 descriptors the process has
        clients.append(connect(server.ports["tcp-echo"]))
    server.expect("cannot accept: Too many open files; pausing accepts")
    for sock in clients:
        sock.close()
    still_serves(server)
