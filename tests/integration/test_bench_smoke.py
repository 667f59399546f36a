"""`scripts/bench.py --quick`: a few seconds, so the benchmark code cannot rot. Its figures are
not asserted; the report's shape is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from labstack import ROOT

pytestmark = pytest.mark.slow

FIELDS = {"workload", "server", "conns", "size_bytes", "req_per_s", "mb_per_s", "p50_us",
          "p99_us", "p999_us", "errors", "server_rss_mb", "server_cpu_pct", "loadgen_cpu_pct"}


def test_bench_quick_run_writes_its_report(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert {"cores", "kernel", "docker"} <= set(report["machine"])
    results = report["results"]
    for row in results:
        assert set(row) >= FIELDS, row
    assert {r["server"] for r in results} == {"project", "asyncio", "socat", "iperf3"}
    assert {r["workload"] for r in results} == {"rr", "bulk", "udp", "idle", "app"}
    for row in results:  # every measurement measured something
        assert (row["req_per_s"] or row["mb_per_s"]), row
    assert len(list(tmp_path.glob("*Z.json"))) == 1  # the timestamped copy
    assert (tmp_path / "latest.md").read_text().startswith("| workload | server |")
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["targets"] and all({"target", "value", "met"} <= set(t)
                                     for t in report["targets"])
