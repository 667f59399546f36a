"""The client CLI without Docker: sizes, exit statuses, retries, and real exchanges on loopback."""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

import jsonschema
import pytest
from lab import registry
from labclient import cli, exchanges, transport
from labclient.errors import EXIT_UNREACHABLE, TimedOut
from labstack import ROOT

SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "docs" / "client-result.schema.json").read_text())
)


def json_line(out: str) -> dict:
    """The client's JSON line, checked against its schema (docs/client-result.schema.json)."""
    data = json.loads(out.strip().splitlines()[-1])
    SCHEMA.validate(data)
    return data


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("64KiB", 65536),
        ("64k", 65536),
        ("1MiB", 1 << 20),
        ("2 mb", 2 << 20),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert cli.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1X", "-5", "1.5MiB", "MiB"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_size(text)


def test_backoff_grows_and_never_passes_the_deadline() -> None:
    deadline = time.monotonic() + 3600
    delays = transport.backoff_delays(deadline)
    first = [next(delays) for _ in range(8)]
    assert 0.05 <= first[0] <= 0.1
    assert all(d <= transport.MAX_BACKOFF_S for d in first)
    assert first[-1] >= transport.MAX_BACKOFF_S / 2
    assert list(transport.backoff_delays(time.monotonic() - 1)) == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens here once the socket closes


def test_unreachable_server_is_exit_3_with_one_line(capsys: pytest.CaptureFixture) -> None:
    started = time.monotonic()
    code = cli.main(
        [
            "echo",
            "--host",
            "127.0.0.1",
            "--port",
            str(_closed_port()),
            "--deadline",
            "0.5",
            "--json",
        ]
    )
    assert code == EXIT_UNREACHABLE
    assert time.monotonic() - started < 5
    out, err = capsys.readouterr()
    assert json_line(out)["exit_status"] == EXIT_UNREACHABLE
    assert err.strip().splitlines()[-1].startswith("client: error: 127.0.0.1:")
    assert "Traceback" not in err


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["echo", "--size", "lots"])
    assert exited.value.code == 2
    assert "invalid size 'lots'" in capsys.readouterr().err


def test_echo_udp_and_greet_against_a_local_server(local_server, capsys) -> None:
    ports = local_server.ports
    assert (
        cli.main(
            [
                "echo",
                "--host",
                "::1",
                "--port",
                str(ports["tcp-echo"]),
                "--size",
                "1MiB",
                "--connections",
                "4",
                "--json",
            ]
        )
        == 0
    )
    echo = json_line(capsys.readouterr().out)
    assert echo["all_ok"] and echo["distinct_payloads"] == 4
    assert cli.main(["udp", "--host", "127.0.0.1", "--port", str(ports["udp-echo"]), "--json"]) == 0
    assert json_line(capsys.readouterr().out)["echoed"] == 3
    assert (
        cli.main(["greet", "--host", "127.0.0.1", "--port", str(ports["greeting"]), "--json"]) == 0
    )
    assert json_line(capsys.readouterr().out)["names_me"] is True


def test_udp_waits_twice_as_long_after_each_resend() -> None:
    """A loopback echo that answers only the fourth copy of each datagram: the client resent 3
    times, waiting 0.1, 0.2 and 0.4 s (0.7 s at least), not 0.1 s each; with one resend fewer
    allowed it gives up, and says how it waited."""
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.settimeout(0.05)
    seen: dict[bytes, int] = {}
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = echo.recvfrom(2048)
            except TimeoutError:
                continue
            seen[data] = seen.get(data, 0) + 1
            if seen[data] == 4:
                echo.sendto(data, peer)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        target = transport.Target("127.0.0.1", echo.getsockname()[1], socket.AF_INET)
        started = time.monotonic()
        result = exchanges.udp_echo(target, 16, 1, retries=3, reply_timeout_s=0.1)
        took = time.monotonic() - started
        assert result.resent == 3 and result.echoed == 1
        assert took >= 0.7, took
        with pytest.raises(TimedOut, match=r"after 3 tries \(waiting 0.1s, doubled"):
            exchanges.udp_echo(target, 16, 1, retries=2, reply_timeout_s=0.1)
    finally:
        stop.set()
        server.join(5)
        echo.close()


def test_repeat_with_interval_spaces_the_exchanges(local_server, capsys) -> None:
    port = str(local_server.ports["tcp-echo"])
    started = time.monotonic()
    assert (
        cli.main(
            [
                "echo",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--size",
                "1KiB",
                "--repeat",
                "4",
                "--interval",
                "0.3",
                "--json",
            ]
        )
        == 0
    )
    took = time.monotonic() - started
    result = json_line(capsys.readouterr().out)
    assert result["completed"] == 4 and result["all_ok"]
    assert took >= 0.9  # three pauses between four exchanges


def _interrupt_at_pause(monkeypatch, pause: int) -> None:
    """Ctrl-C arrives during the ``pause``-th wait between exchanges (1 is the first)."""
    pauses = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == pause:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli.time, "sleep", sleep)


@pytest.mark.parametrize("json_output", [True, False])
def test_ctrl_c_during_a_repeat_prints_what_was_checked_and_exits_130(
    local_server, capsys, monkeypatch, json_output: bool
) -> None:
    _interrupt_at_pause(monkeypatch, 3)  # after the third exchange
    port = str(local_server.ports["tcp-echo"])
    args = ["echo", "--host", "127.0.0.1", "--port", port, "--repeat", "100", "--interval", "1"]
    assert cli.main(args + (["--json"] if json_output else [])) == 130
    out = capsys.readouterr().out
    if json_output:
        result = json_line(out)
        assert result["interrupted"] is True and result["all_ok"] is True
        assert (result["completed"], result["repeats"]) == (3, 100)
    else:
        assert "echo x100: stopped (Ctrl-C) after 3, all checked" in out


def test_ctrl_c_before_any_exchange_completed_has_nothing_to_report(
    local_server, capsys, monkeypatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "retry_exchange", interrupted)
    port = str(local_server.ports["tcp-echo"])
    args = ["echo", "--host", "127.0.0.1", "--port", port, "--repeat", "5", "--json"]
    assert cli.main(args) == 130
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "command",
    [
        ["app", "reverse", "abc"],
        ["app", "echo", "x", "--pipeline", "3"],
        ["app", "echo", "x", "--connections", "2"],
        ["raw", "--text", "hi", "--timeout", "0.5"],
        ["raw", "--text", "a", "--text", "b", "--timeout", "0.5"],
        ["demo"],
        ["udp", "--count", "2"],
        ["app", "dance"],
    ],
)
def test_every_json_line_matches_the_schema(local_server, capsys, command: list[str]) -> None:
    ports = local_server.ports
    options = ["--host", "127.0.0.1", "--json", "--deadline", "2"]
    if command[0] == "demo":
        options += [
            f"--{row.port_setting.replace('_', '-')}={ports[row.name]}"
            for row in registry.LISTENERS
        ]
    elif command[0] == "udp":
        options += ["--port", str(ports["udp-echo"])]
    else:
        options += ["--port", str(ports["app"])]
    code = cli.main([*command, *options])
    data = json_line(capsys.readouterr().out)
    assert data["ok"] is (code == 0)
    assert code == (5 if command == ["app", "dance"] else 1 if command == ["demo"] else 0)
