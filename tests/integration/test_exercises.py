"""The learning path's exercises are graded by the kit: each starting file fails exactly the
cases its task is about (so the learner sees why), and each reference solution passes them all
(so the task can be done, and the kit knows when it is)."""

from __future__ import annotations

import fnmatch
import json
import sys
from pathlib import Path

import children
import pytest
from labcheck.exercises import EXERCISES, Exercise

pytestmark = pytest.mark.check
SPREAD = True  # each test its own kit run: make test spreads them over workers

HANG_S = 120

# What each starting file gets wrong, as the kit must see it.
STARTING_FAILS = {
    1: {"reach.ipv4", "reach.ipv6"},
    2: {"client.segments"},
    3: {"udp.empty", "udp.largest", "udp.sources"},  # the empty one goes to the first client
    4: {"app.split-anywhere", "app.pipelining"},
    5: {"echo.two-clients", "echo.fifty-clients", "echo.idle-client"},
}


def grade(exercise: Exercise, program: Path, tmp_path: Path) -> tuple[int, dict, str]:
    report = tmp_path / "report.json"
    proc = children.run(
        [
            *(sys.executable, "-m", "labcheck", "exercise", str(exercise.number)),
            *("--program", str(program), "--report", str(report)),
        ],
        timeout_s=HANG_S,
    )
    print(proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(report.read_text()), proc.stdout + proc.stderr


def graded_ids(exercise: Exercise, report: dict) -> set[str]:
    ids = {case["id"] for case in report["cases"]}
    assert all(
        case == "server.listening" or any(fnmatch.fnmatchcase(case, p) for p in exercise.cases)
        for case in ids
    ), ids  # nothing outside the exercise's scope is graded
    return ids


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"ex{e.number}")
def test_the_starting_file_fails_what_the_task_is_about(exercise: Exercise, tmp_path: Path) -> None:
    code, report, output = grade(exercise, exercise.starting, tmp_path)
    failed = {c["id"] for c in report["cases"] if c["verdict"] == "fail"}
    assert code == 1 and failed == STARTING_FAILS[exercise.number], output
    assert all(c["hint"] for c in report["cases"] if c["verdict"] == "fail"), output
    graded_ids(exercise, report)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"ex{e.number}")
def test_the_reference_solution_passes(exercise: Exercise, tmp_path: Path) -> None:
    code, report, output = grade(exercise, exercise.solution, tmp_path)
    ids = graded_ids(exercise, report)
    assert code == 0 and {c["verdict"] for c in report["cases"]} == {"pass"}, output
    assert ids >= STARTING_FAILS[exercise.number]  # the cases the task is about were graded
