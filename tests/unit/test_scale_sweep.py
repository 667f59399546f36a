"""The benchmark's scale sweep (labtools.scale, the load generator's holder): its arithmetic,
what it does on an engine that cannot give a container 100,000 descriptors, and the holder
itself on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labbench import loadgen
from labtools import bench, scale

V2 = "anon 31457280\nfile 4096\nkernel 15728640\nsock 0\n"
V2_OLD = "anon 1048576\nfile 0\nkernel_stack 16384\nslab 2097152\nsock 4096\n"
V1 = "cache 0\nrss 20971520\nrss_huge 0\ntotal_rss 20971520\n"


def test_memory_from_either_cgroup_version() -> None:
    assert scale.parse_memory(V2) == {"anon": 31457280, "kernel": 15728640}
    assert scale.parse_memory(V2_OLD) == {"anon": 1048576, "kernel": 2097152 + 4096 + 16384}
    assert scale.parse_memory(V1, "5242880\n") == {"anon": 20971520, "kernel": 5242880}
    assert scale.parse_memory(V1) == {"anon": 20971520, "kernel": None}


def test_setup_rate_spans_all_holders() -> None:
    opened = [
        {"opened": 5000, "first": 100.0, "last": 100.5},
        {"opened": 5000, "first": 100.1, "last": 101.0},
    ]
    assert scale.setup_rate(opened) == 10000  # 10,000 over 1.0 s: first connect to last
    assert scale.setup_rate([{"opened": 0, "first": 1.0, "last": 1.0}]) is None


def test_bytes_per_connection_are_over_the_fresh_server() -> None:
    assert scale.per_connection(30 << 20, 20 << 20, 10000) == pytest.approx(1048.6)
    assert scale.per_connection(None, 1, 10) is None
    assert scale.per_connection(5, 1, 0) is None


def test_an_engine_with_few_descriptors_sweeps_as_far_as_it_can_and_says_why() -> None:
    assert scale.reachable(scale.SWEEP, 1048576) == (scale.SWEEP, None)
    kept, why = scale.reachable(scale.SWEEP, 20000)
    assert kept == (1000, 10000, 19000)
    assert why is not None and "50,000, 100,000" in why and "20,000 descriptors" in why
    assert "LimitNOFILE" in why


def test_the_full_plan_sweeps_every_server_that_can_hold_connections() -> None:
    plan = bench.cases("full", bench.SERVERS, nofile=1048576)
    runs = [r for r in bench.schedule(plan, 3) if r["workload"] == "hold"]
    counts = {
        server: sorted({r["conns"] for r in runs if r["server"] == server})
        for server in bench.SCALE_SERVERS
    }
    assert counts == {
        "project": [1000, 10000, 50000, 100000],
        "asyncio": [1000, 10000, 50000, 100000],
        "asyncio-protocol": [1000, 10000, 50000, 100000],
        "uvloop": [1000, 10000, 50000, 100000],
        "multiconn": [1000, 10000],  # about 1,000 a second: SCALE_MOST
    }
    # The targets' server three times a point, the peers once.
    assert sum(r["server"] == "project" for r in runs) == 12
    assert sum(r["server"] == "uvloop" for r in runs) == 4
    assert not [c for c in plan if c["workload"] == "idle" and not c.get("table")]
    quick = [c for c in bench.cases("quick", bench.SERVERS, 1048576) if c["workload"] == "hold"]
    assert [c["conns"] for c in quick] == list(scale.QUICK_SWEEP)


def _held(server: str, conns: int, rss_mb: float, per_conn: float, p99_us: int, rate: int):
    return {
        "workload": "hold",
        "server": server,
        "conns": conns,
        "size_bytes": None,
        "repeat": 1,
        "held": conns,
        "server_rss_mb": rss_mb,
        "rss_base_mb": 14.0,
        "rss_per_conn_b": per_conn,
        "p99_us": p99_us,
        "setup_per_s": rate,
    }


def test_scale_targets_are_met_only_at_100000() -> None:
    rows = [
        _held("project", 10000, 23.0, 900.0, 1500, 12000),
        _held("project", 100000, 110.0, 960.0, 3000, 15000),
    ]
    judged = {t["target"]: t for t in bench.targets(bench.summarise(rows))}
    assert judged["idle connections held across hosts >= 100,000"]["met"]
    assert judged["project's RSS at 100,000 <= 128 MB"]["value"] == 110.0
    assert judged["RSS per connection at 100,000 / at 10,000 <= 1.1"]["value"] == 1.07
    assert judged["fresh request p99 while 100,000 are held < 5 ms"]["met"]
    assert all(t["note"] is None for t in judged.values() if "100,000" in t["target"])
    short = [_held("project", 10000, 23.0, 900.0, 1500, 12000), rows[0] | {"conns": 19000}]
    judged = {t["target"]: t for t in bench.targets(bench.summarise(short))}
    projected = judged[
        "project's RSS at 100,000 <= 128 MB (projected: fresh RSS + bytes per connection x 100,000)"
    ]
    assert projected["value"] == round(14.0 + 900.0 * 100000 / 2**20, 1)
    assert not projected["met"] and "measured at 19,000" in projected["note"]
    assert not any(t["met"] for t in judged.values() if "100,000" in t["target"])


def test_the_report_has_the_scale_table_its_limits_and_curves(tmp_path: Path) -> None:
    rows = [
        _held("project", 1000, 15.0, 1000.0, 900, 9000),
        _held("project", 10000, 23.0, 900.0, 1500, 12000),
        _held("uvloop", 10000, 25.0, 990.0, 1200, 11000),
    ]
    summary = bench.summarise(rows)
    report = {
        "summary": summary,
        "targets": bench.targets(summary),
        "repeats": 1,
        "duration_s": 2.0,
        "cpus": None,
        "unavailable": {},
        "machine": {"cores": 2, "kernel": "k", "docker": "d"},
        "started": "2026-12-02T00:00:00Z",
        "results": rows,
        "limits": {"set": ["server: nofile 20000"], "left_out": "100,000 left out: why"},
    }
    text = bench.markdown(report)
    assert "| lab | 10,000 of 10,000 | 12,000 |" in text
    assert "| uvloop | 10,000 of 10,000 |" in text
    assert "- server: nofile 20000" in text and "- 100,000 left out: why" in text
    bench.chart(report, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A loopback listener that accepts everything in a thread; the accepted sockets."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
    sock.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock, accepted
    stop.set()
    thread.join(5)
    for s in accepted:
        s.close()
    sock.close()


def test_a_holder_opens_many_with_a_window_and_sees_what_the_server_closed(listener) -> None:
    server, accepted = listener
    socks, failed, first, last = loadgen.open_many("127.0.0.1", server.getsockname()[1], 300, 32)
    try:
        assert len(socks) == 300 and failed == 0 and first <= last
        deadline = time.monotonic() + 5
        while len(accepted) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(accepted) == 300
        for sock in accepted[:10]:
            sock.close()
        deadline = time.monotonic() + 5  # until the closes' FINs have crossed loopback
        while (held := loadgen.still_open(socks)) > 290 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held == 290
    finally:
        for sock in socks:
            sock.close()


def test_connects_that_fail_are_counted_not_raised() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connects are refused
        socks, failed, _, _ = loadgen.open_many("127.0.0.1", port, 50, 8)
    assert socks == [] and failed == 50


def test_the_holder_holds_until_released_and_resets(listener, tmp_path: Path) -> None:
    server, accepted = listener
    release = tmp_path / "release"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "labbench.loadgen", "hold", "--host", "127.0.0.1"),
            *("--port", str(server.getsockname()[1]), "--idle", "100"),
            *("--release-file", str(release), "--hold-max", "30"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        opened = json.loads(proc.stdout.readline())
        assert opened["opened"] == 100 and opened["connect_failed"] == 0
        assert proc.poll() is None  # holding
        release.touch()
        final = json.loads(proc.stdout.readline())
        assert final == {"held": 100, "turned_away": 0, "connect_failed": 0}
        assert proc.wait(10) == 0
        for sock in accepted:  # reset, not closed: the server side sees ECONNRESET
            sock.settimeout(2)
            with pytest.raises(ConnectionResetError):
                sock.recv(1)
    finally:
        proc.kill()
        proc.wait(5)


def test_a_full_run_writes_the_scale_page_region(tmp_path: Path) -> None:
    """docs/scale.md's figures come from make bench, like docs/benchmark.md's."""
    rows = [
        _held("project", 10000, 23.0, 900.0, 1500, 12000),
        _held("project", 100000, 110.0, 960.0, 3000, 15000),
    ]
    summary = bench.summarise(rows)
    report = {
        "started": "2026-12-02T01:00:00Z",
        "wall_s": 600.0,
        "duration_s": 2.0,
        "repeats": 3,
        "machine": {"cores": 2, "kernel": "6.1", "docker": "28.2.2"},
        "cpus": None,
        "unavailable": {},
        "results": rows,
        "summary": summary,
        "targets": bench.targets(summary),
        "limits": {"set": ["server: nofile 110000"], "left_out": None},
    }
    marker = "<!-- bench: begin (written by make bench) -->\nold\n<!-- bench: end -->\n"
    (tmp_path / "benchmark.md").write_text("# b\n\n" + marker)
    (tmp_path / "scale.md").write_text("# s\n\n" + marker + "\nnotes\n")
    bench.write_doc(report, None, tmp_path / "benchmark.md")
    text = (tmp_path / "scale.md").read_text()
    assert "old" not in text and text.endswith("<!-- bench: end -->\n\nnotes\n")
    assert "| lab | 100,000 of 100,000 | 15,000 |" in text
    assert "| idle connections held across hosts >= 100,000 | 100000 | yes |" in text
    assert "rr 1 KiB" not in text  # the benchmark's other targets stay on its own page
    assert "- server: nofile 110000" in text


def test_the_scale_page_has_its_generated_region() -> None:
    text = (bench.DOC_SCALE).read_text()
    assert text.count(bench.DOC_BEGIN) == 1 and text.count(bench.DOC_END) == 1
