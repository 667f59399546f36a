"""`scripts/bench.py --smoke`: a few seconds, so the benchmark code cannot rot. Its figures are
not asserted; the report's shape is."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import children
import pytest
from labstack import ROOT
from labtools import bench, benchpage

# make test runs it beside the kit's tests (marker with_kit): it asserts no figures, and the
# integration suite is the longest part.
pytestmark = [pytest.mark.slow, pytest.mark.with_kit]

FIELDS = {
    "workload",
    "server",
    "conns",
    "size_bytes",
    "repeat",
    "req_per_s",
    "mb_per_s",
    "p50_us",
    "p99_us",
    "p999_us",
    "errors",
    "server_rss_mb",
    "server_cpu_pct",
    "server_cpu_us_per_req",
    "loadgen_cpu_pct",
}
PEERS = {"project", "asyncio", "asyncio-protocol", "uvloop", "socat", "iperf3"}


def test_bench_quick_run_writes_its_report(tmp_path: Path) -> None:
    proc = children.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--smoke", "--out", str(tmp_path)],
        timeout_s=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert {"cores", "kernel", "docker"} <= set(report["machine"])
    assert report["repeats"] == 1 and report["summary"]
    if (report["machine"]["cores"] or 1) >= 2:
        assert report["cpus"] == {
            "server": "0",
            "loadgen": "1"
            if report["machine"]["cores"] == 2
            else f"1-{report['machine']['cores'] - 1}",
        }
    # A PyPI peer is measured, or the report says why not (no wheel: PyPI unreachable at build).
    assert all(why for why in report["unavailable"].values())
    if report["cpus"]:  # pinned: the quiet-machine check timed each pinned core at both ends
        check = report["quiet"]
        pinned = (
            {"0", "1"} if report["machine"]["cores"] == 2 else set(check["calibration_before_s"])
        )
        assert set(check["calibration_before_s"]) == set(check["calibration_after_s"]) == pinned
        assert all(0 < t < 10 for t in check["calibration_before_s"].values())
        assert check["others_core_share"] is not None and isinstance(check["disturbed"], bool)
    results = report["results"]
    for row in results:
        assert set(row) >= FIELDS, row
    assert {r["server"] for r in results} == (PEERS - set(report["unavailable"])) | {
        "blocking",
        "threaded",
        "multiconn",
    }
    rr = [r for r in results if r["workload"] == "rr"]
    assert all(r["server_cpu_us_per_req"] > 0 for r in rr), rr
    if "uvloop" not in report["unavailable"]:
        assert {r.get("engine") for r in rr} == {"uvloop"}  # the load generator's own loop
    assert {r["workload"] for r in results} == {"rr", "bulk", "udp", "idle", "app", "hold"}
    held = [r for r in results if r["workload"] == "hold"]  # the scale sweep, from 4+ holders
    assert [r["conns"] for r in held] == [200, 1000]
    for row in held:  # every connection held, its costs and a fresh request's latency measured
        assert row["held"] == row["conns"] and row["connect_failed"] == 0, row
        assert row["setup_per_s"] > 0 and row["server_cpu_us_per_conn"] > 0, row
        assert row["rss_per_conn_b"] is not None and row["p99_us"] > 0, row
    assert report["mode"] == "smoke" and report["limits"]["set"]
    assert report["limits"]["engine_nofile"] > 1000
    for row in results:  # every measurement measured something
        assert row["req_per_s"] or row["mb_per_s"] or row.get("held"), row
    assert len(list(tmp_path.glob("*Z.json"))) == 1  # the timestamped copy
    table = (tmp_path / "latest.md").read_text()
    assert table.startswith("| workload | server | conns | size |")
    assert "server CPU us/req" in table and "Median of 1 interleaved runs" in table
    assert "From the tutorial to the lab" in table
    assert "Idle connections held from several hosts" in table
    for step in ("blocking", "threaded", "multiconn", "lab"):
        assert f"\n| {step} | " in table
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "latest.html").read_text()
    assert page.count('<figure class="chart"') == len(benchpage.charts(report)) >= 6
    assert report["targets"] and all(
        {"target", "value", "met"} <= set(t) for t in report["targets"]
    )


def test_a_peer_missing_from_the_tools_image_is_reported_not_silently_dropped() -> None:
    """No uvloop wheel (PyPI unreachable when the image was built): the benchmark leaves uvloop
    out and says why. The server image has no uvloop: it stands in for such a tools image."""
    tag = os.environ.get("LAB_IMAGE_TAG", "latest")
    missing = bench.available_peers(f"sockets-lab/server:{tag}")["uvloop"]
    assert missing is not None
    assert "uvloop is not in the tools image" in missing and "ModuleNotFoundError" in missing
    assert bench.available_peers(f"sockets-lab/tools:{tag}") == {"uvloop": None}
