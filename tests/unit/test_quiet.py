"""The benchmark's quiet-machine check (labtools.quiet): it must be able to call a run
disturbed, and only then; the figures it reads are parsed right."""

from __future__ import annotations

import subprocess
import sys

from labtools import quiet

PROC_STAT = """cpu  900 10 300 50000 20 0 40 7 0 0
cpu0 500 5 200 25000 10 0 30 3 0 0
cpu1 400 5 100 25000 10 0 10 4 0 0
intr 12345
"""


def test_busy_time_is_user_nice_system_and_steal_of_the_named_cores() -> None:
    assert quiet.busy_seconds(PROC_STAT, [0]) == (500 + 5 + 200 + 3) / 100
    assert quiet.busy_seconds(PROC_STAT, [0, 1]) == (708 + 509) / 100
    assert quiet.busy_seconds(PROC_STAT, [7]) == 0  # a core that is not there counts nothing


def test_cpusets_name_their_cores() -> None:
    assert quiet.cores_of("0") == [0]
    assert quiet.cores_of("1-3") == [1, 2, 3]
    assert quiet.cores_of("0,2-3") == [0, 2, 3]


def test_a_quiet_run_is_called_quiet() -> None:
    check = quiet.judge({"0": 0.100, "1": 0.102}, {"0": 0.120, "1": 0.090}, 3.0, 300.0)
    assert check["disturbed"] is False and check["why"] == []
    assert check["others_core_share"] == 0.01
    assert quiet.describe(check).startswith("Quiet-machine check: quiet")


def test_a_core_that_slowed_down_marks_the_run_disturbed_and_says_which() -> None:
    check = quiet.judge({"0": 0.100, "1": 0.100}, {"0": 0.100, "1": 0.160}, 0.0, 300.0)
    assert check["disturbed"] is True and check["calibration_drift"]["1"] == 0.6
    (why,) = check["why"]
    assert "core 1" in why and "100 ms before the run and 160 ms after (+60%)" in why
    assert "DISTURBED" in quiet.describe(check)


def test_other_processes_on_the_pinned_cores_mark_the_run_disturbed() -> None:
    check = quiet.judge({"0": 0.1}, {"0": 0.1}, 60.0, 300.0)  # a fifth of a core, all run long
    assert check["disturbed"] is True
    assert check["why"] == [
        "other processes used 20% of a core on the pinned cores (60 s of CPU in 300 s)"
    ]


def test_the_calibration_loop_runs_and_prints_a_time() -> None:
    """The loop the benchmark runs on each core, here on this machine: a few tens of ms."""
    out = subprocess.run(
        [sys.executable, "-c", quiet.calibration_source(3)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert 0.001 < float(out) < 5


def test_calibrate_runs_the_loop_on_each_core() -> None:
    seen = []

    def run_on_core(core: int, source: str) -> str:
        seen.append(core)
        assert "spin(2_000_000)" in source
        return f"0.{core + 1}"

    assert quiet.calibrate(run_on_core, [0, 1]) == {"0": 0.1, "1": 0.2}
    assert seen == [0, 1]
