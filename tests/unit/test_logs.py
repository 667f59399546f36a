"""Logs a machine can read: LAB_LOG_FORMAT=json writes one object per line with the time (date
and UTC offset), level, event, connection, peer and figures; LAB_STATS_INTERVAL_S adds a
periodic stats line. The text form stays the default for people."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest
from labstack.stack import event_matches

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


def events(lines: list[str]) -> list[dict]:
    """Every line must be a JSON object (nothing else is written in this form)."""
    return [json.loads(line) for line in lines]


def test_json_lines_carry_the_event_the_connection_and_its_figures(make_server) -> None:
    server = make_server(LAB_LOG_FORMAT="json", LAB_STATS_INTERVAL_S="1")
    server.expect('"event": "listening"')
    port = server.ports["tcp-echo"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"x" * 1000)
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert got == b"x" * 1000
    closed = json.loads(server.expect('"event": "closed"'))
    assert ISO_TIME.match(closed["time"]), closed["time"]  # a date and an offset, not just a time
    assert closed["level"] == "DEBUG" and closed["listener"] == "tcp-echo"  # loopback: DEBUG
    assert closed["reason"] == "peer closed" and closed["rx"] == 1000 and closed["tx"] == 1000
    assert closed["peer"].startswith("127.0.0.1:") and isinstance(closed["conn"], int)
    with socket.create_connection(("127.0.0.1", server.ports["app"]), timeout=5) as sock:
        sock.sendall(b"\x00\x02{]")  # a header of two bytes that are not JSON
        sock.recv(65536)
    bad = json.loads(server.expect('"event": "bad-frame"'))
    assert bad["level"] == "WARNING" and bad["code"] == "header-not-json", bad
    assert bad["kind"] == "bad-frame"  # what a "suppressed" summary counts it under
    stats = json.loads(server.expect('"event": "stats"'))
    assert stats["served"] >= 2 and stats["bytes_rx"] >= 1000 and stats["bytes_tx"] >= 1000
    assert stats["open"] >= 0 and stats["budget"] > 0 and "budget_used" in stats
    assert server.terminate() == 0
    draining = json.loads(server.expect('"event": "draining"'))
    assert draining["signal"] == "SIGTERM" and draining["in_flight"] == 0, draining
    stopped = json.loads(server.expect('"event": "stopped"'))
    assert stopped["served"] >= 2
    server.proc.wait(timeout=5)
    server.seen += list(server.lines.queue)
    every = events(server.seen)  # each line parsed: no text line slipped into the JSON form
    assert {"listening", "settings", "budget", "open", "closed", "stats", "stopped"} <= {
        e["event"] for e in every
    }
    (budget,) = [e for e in every if e["event"] == "budget"]
    assert budget["bytes"] == stats["budget"]


def test_text_stays_the_default_and_a_bad_format_is_one_line(make_server) -> None:
    server = make_server()
    line = server.expect("listening: ")
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} INFO ", line), line
    proc = subprocess.run(
        [sys.executable, "-m", "labserver"],
        env={**os.environ, "LAB_LOG_FORMAT": "yaml"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert proc.stderr.strip() == "labserver: LAB_LOG_FORMAT='yaml' is not one of text, json"


@pytest.mark.parametrize(("quiet", "level"), [("0", "INFO"), ("1", "DEBUG")])
def test_loopback_peers_are_logged_like_any_other_unless_compose_says_quiet(
    make_server, quiet: str, level: str
) -> None:
    """By hand, a learner's own client on loopback shows; in compose.yaml (LAB_QUIET_LOOPBACK=1)
    loopback is the health check, every second, and goes to DEBUG."""
    server = make_server(LAB_LOG_FORMAT="json", LAB_QUIET_LOOPBACK=quiet)
    server.expect('"event": "listening"')
    socket.create_connection(("127.0.0.1", server.ports["greeting"]), timeout=5).close()
    opened = json.loads(server.expect('"event": "open"'))
    assert opened["level"] == level and opened["peer"].startswith("127.0.0.1:"), opened


@pytest.mark.parametrize(
    ("fields", "matches"),
    [
        ({"event": "open"}, True),
        ({"event": "closed"}, False),
        ({"peer_ip": "172.18.0.3"}, True),
        ({"peer_ip": "172.18.0.33"}, False),
        ({"event": "open", "conn": 7}, True),
        ({"conn": lambda n: n > 7}, False),
        ({"reason": "x"}, False),  # a field the event does not have
    ],
)
def test_the_suite_matches_events_by_their_fields(fields: dict, matches: bool) -> None:
    event = {"event": "open", "conn": 7, "peer": "172.18.0.3:41072"}
    assert event_matches(event, fields) is matches


def test_an_ipv6_peer_matches_by_its_address_without_brackets() -> None:
    event = {"event": "closed", "peer": "[fd5a:b0c7:1ab::3]:55946"}
    assert event_matches(event, {"peer_ip": "fd5a:b0c7:1ab::3"})
    assert not event_matches(event, {"peer_ip": "fd5a:b0c7:1ab::"})
