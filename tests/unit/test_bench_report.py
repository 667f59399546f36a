"""scripts/bench.py's bookkeeping: the interleaved schedule, medians with their spread, the
cores, the CPU counters and the targets (the figures themselves come from `make bench`)."""

from __future__ import annotations

import signal

import pytest
from labtools import bench, quiet


def test_servers_are_interleaved_within_each_repeat() -> None:
    plan = [{"workload": "rr", "conns": 64, "size": 1024, "servers": ("a", "b", "c")}]
    order = [(r["server"], r["repeat"]) for r in bench.schedule(plan, 3)]
    assert order == [
        ("a", 1),
        ("b", 1),
        ("c", 1),
        ("a", 2),
        ("b", 2),
        ("c", 2),
        ("a", 3),
        ("b", 3),
        ("c", 3),
    ]


def _row(server: str, req: float, cpu: float | None = 10.0, **extra: object) -> dict:
    return {
        "workload": "rr",
        "server": server,
        "conns": 64,
        "size_bytes": 1024,
        "req_per_s": req,
        "server_cpu_us_per_req": cpu,
        "errors": 0,
        **extra,
    }


def test_summary_is_the_median_with_min_and_max() -> None:
    rows = [
        _row("a", 100.0, 12.0),
        _row("a", 300.0, 10.0),
        _row("a", 200.0, 30.0, errors=2),
        _row("b", 50.0, None),
    ]
    summary = {r["server"]: r for r in bench.summarise(rows)}
    assert summary["a"]["req_per_s"] == 200.0
    assert summary["a"]["spread"]["req_per_s"] == [100.0, 300.0]
    assert summary["a"]["server_cpu_us_per_req"] == 12.0
    assert summary["a"]["errors"] == 2 and summary["a"]["repeats"] == 3
    assert summary["b"]["server_cpu_us_per_req"] is None  # never measured: not zero
    assert bench.spread(summary["a"], "req_per_s") == "200 (100-300)"
    assert bench.spread(summary["b"], "req_per_s") == "50"


def test_targets_are_judged_on_the_medians() -> None:
    rows = [
        _row("project", 30000, 20),
        _row("asyncio", 15000, 40),
        _row("asyncio-protocol", 26000, 30),
        _row("uvloop", 36000, 15),
        _row("socat", 14000, 50),
    ]
    met = {
        t["target"].split(": ", 1)[1]: (t["value"], t["met"])
        for t in bench.targets(bench.summarise(rows))
    }
    assert met["project / asyncio streams >= 1.5"] == (2.0, True)
    assert met["project / asyncio Protocol >= 1.2"] == (1.15, False)
    assert met["project / socat >= 2"] == (2.14, True)
    assert met["uvloop / project <= 1.25 (within 1.25x of uvloop)"] == (1.2, True)
    assert met["server CPU per request, project / asyncio streams <= 0.6"] == (0.5, True)
    assert met["project / iperf3 ceiling >= 0.60"] == (None, False)  # no bulk run: not met


@pytest.mark.parametrize(("cpuset", "count"), [("1", 1), ("1-3", 3), ("0,2-3", 3)])
def test_core_count(cpuset: str, count: int) -> None:
    assert bench.core_count(cpuset) == count


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n", 2.5),  # cgroup v2
        ("1500000000\n", 1.5),  # cgroup v1 cpuacct.usage, in ns
    ],
)
def test_cpu_counters_of_both_cgroup_versions(text: str, seconds: float) -> None:
    assert quiet.cgroup_seconds(text) == pytest.approx(seconds)


def test_a_full_run_rewrites_only_its_region_of_the_benchmark_page(tmp_path) -> None:
    """docs/benchmark.md's figures are written by make bench, never by hand: the region
    between the markers is replaced by the run's, the prose around it is kept."""
    doc = tmp_path / "benchmark.md"
    doc.write_text(
        "# The benchmark\n\nmethod prose\n\n"
        "<!-- bench: begin (written by make bench) -->\nold figures 123\n<!-- bench: end -->\n"
        "\nnotes\n"
    )
    report = {
        "started": "2026-12-01T22:00:00Z",
        "wall_s": 312.4,
        "duration_s": 2.0,
        "repeats": 3,
        "machine": {"cores": 2, "kernel": "6.1", "docker": "28.2.2"},
        "cpus": {"server": "0", "loadgen": "1"},
        "unavailable": {},
        "results": [{}] * 7,
        "summary": [_row("project", 1000.0, p99_us=90.0, spread={})],
        "targets": [{"target": "a target", "value": 1.5, "met": True}],
    }
    bench.write_doc(report, None, doc)
    text = doc.read_text()
    assert "old figures 123" not in text
    assert text.startswith("# The benchmark\n\nmethod prose\n\n<!-- bench: begin")
    assert text.endswith("<!-- bench: end -->\n\nnotes\n")
    assert "started 2026-12-01T22:00:00Z and took 312 s for 7 measurements, on 2 cores" in text
    assert "| rr | project | 64 | 1024 | 1,000 |" in text and "| a target | 1.5 | yes |" in text
    bench.write_doc(report, None, doc)  # again: the same page, not a second region
    assert doc.read_text() == text


def test_the_benchmark_page_has_its_generated_region() -> None:
    text = bench.DOC.read_text()
    assert text.count(bench.DOC_BEGIN) == 1 and text.count(bench.DOC_END) == 1


def test_the_full_run_sweeps_request_response_over_concurrency() -> None:
    """rr 1 KiB at 1, 16, 64, 256 and 1,024 connections for every server but socat, which forks a
    process per connection and stays at 64 and below."""
    servers = ("project", "asyncio", "asyncio-protocol", "uvloop", "socat")
    plan = [c for c in bench.cases("full", servers) if c["workload"] == "rr" and not c.get("table")]
    by_conns = {c["conns"]: c["servers"] for c in plan if c["size"] == 1024}
    assert sorted(by_conns) == [1, 16, 64, 256, 1024]
    assert "socat" in by_conns[64] and "socat" not in by_conns[256]
    assert set(by_conns[1024]) == set(servers) - {"socat"}


def test_the_cost_curves_are_drawn_and_the_concurrency_target_judged(tmp_path) -> None:
    rows = []
    for server, cpu in (("project", (10.0, 10.5)), ("asyncio", (13.0, 15.0))):
        for conns, us in zip((64, 1024), cpu, strict=True):
            rows.append(_row(server, 50_000.0, us, conns=conns, spread={}))
    report = {
        "started": "2026-12-01T23:00:00Z",
        "repeats": 3,
        "summary": rows,
    }
    bench.chart(report, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
    (target,) = [t for t in bench.targets(rows) if "at 1,024 connections" in t["target"]]
    assert target["value"] == 1.05 and target["met"] is True


def test_an_interrupted_benchmark_says_so_in_one_line_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C, or SIGTERM from a CI that cancels (scripts/bench.py once left SIGTERM to kill
    it outright, and Ctrl-C printed a traceback): its stack is torn down on the way out."""

    def interrupted() -> int:
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(bench, "main", interrupted)
    try:
        assert bench.run() == 130
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().err == "bench: interrupted; what it started has been removed\n"
