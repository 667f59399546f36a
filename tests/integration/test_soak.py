"""A 60 s chaos soak (``make soak``'s code, a fixed seed): clients in three containers, faults
that overlap, and every operation accounted for. Any violation (an operation corrupt or lost)
fails the test; so does a soak that proved little (too few operations, or faults)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import children
import docker
import pytest
from labsoak.checker import OUTCOMES
from labsoak.nemesis import NETWORK_FAULTS, PROCESS_FAULTS

# make test runs it in the kit's part (marker with_kit): that part's two workers ended a minute
# before the integration suite, and most of the soak's 60 s is waiting. It asserts no timing but
# one floor (3,000 operations), far below what it does beside the other parts.
pytestmark = [pytest.mark.soak, pytest.mark.slow, pytest.mark.with_kit]

SECONDS = 60
SEED = "make-test-1"  # the same schedule on every run: replay with make soak SOAK_SEED=...


def soak_leftovers(project: str = "labsoak-") -> list[str]:
    """Containers and networks of a soak's compose project (by default any soak's) still on
    the engine."""
    engine = docker.from_env()
    return [  # the engine's own list: one request, no inspection of each container
        c["Names"][0].lstrip("/")
        for c in engine.api.containers(all=True)
        if (c.get("Labels") or {}).get("com.docker.compose.project", "").startswith(project)
    ] + [n.name for n in engine.networks.list() if n.name.startswith(project)]


def test_a_60_second_soak_loses_and_corrupts_nothing(tmp_path: Path) -> None:
    proc = children.run(
        [
            sys.executable,
            "-m",
            "labsoak",
            "--seconds",
            str(SECONDS),
            "--seed",
            SEED,
            "--out",
            str(tmp_path),
        ],
        timeout_s=SECONDS + 180,
    )
    print(proc.stdout[-4000:])
    assert f"seed {SEED}" in proc.stdout.splitlines()[0]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["violation_count"] == 0, json.dumps(report["violations"][:5], indent=1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(report["outcomes"]) == set(OUTCOMES)
    assert report["operations"] > 3000
    for kind, counts in report["by_kind"].items():
        assert counts["ok"] > 0, kind  # every kind of operation worked, between faults
    applied = {f["kind"] for f in report["faults"]}
    assert len(report["faults"]) >= 8 and len(applied) >= 5, report["faults"]
    assert applied <= set(PROCESS_FAULTS) | set(NETWORK_FAULTS)
    tracks = [f for f in report["faults"]]
    overlapping = any(
        a["start"] < b["end"] and b["start"] < a["end"]
        for i, a in enumerate(tracks)
        for b in tracks[i + 1 :]
    )
    assert overlapping, "no two faults overlapped"
    for kind, figures in report["per_fault"].items():
        assert figures["operations"] > 0, kind
    assert (tmp_path / "latest.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "latest-history.jsonl.gz").stat().st_size > 0
    (project,) = re.findall(r"^soak: compose project (\S+)$", proc.stdout, re.M)
    assert soak_leftovers(project) == []


def test_ctrl_c_undoes_every_fault_and_leaves_nothing(tmp_path) -> None:
    """Interrupted once a fault is in place: one line, exit 130, and nothing of the soak's left
    (its stack, its clients, the nemesis's helpers)."""
    soak = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labsoak",
            "--seconds",
            "60",
            "--seed",
            "ctrl-c",
            "--out",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert soak.stdout is not None
        project = ""
        for line in soak.stdout:  # the schedule's first fault comes within seconds
            if line.startswith("soak: compose project "):
                project = line.split()[-1]
            if line.startswith("nemesis: "):
                break
        soak.send_signal(signal.SIGINT)
        _, err = soak.communicate(timeout=180)
    finally:
        if soak.poll() is None:
            soak.kill()
    assert soak.returncode == 130, err
    assert "interrupted; every fault undone" in err and "Traceback" not in err, err
    assert project.startswith("labsoak-")
    assert soak_leftovers(project) == []  # this soak's: another may be running meanwhile
