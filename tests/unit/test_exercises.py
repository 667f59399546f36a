"""The exercises' plumbing, without Docker: every exercise has its starting file and a solution
that differs from it, the path names the command that grades each, the kit grades only the
cases asked for and says at once when a pattern matches none. (That the kit fails each
starting file and passes each solution across containers: tests/integration/test_exercises.py.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from labcheck import exercises, kit
from labcheck.__main__ import main
from labcheck.report import Report
from labstack import ROOT


@pytest.mark.parametrize("exercise", exercises.EXERCISES, ids=lambda e: f"ex{e.number}")
def test_each_exercise_has_a_starting_file_and_a_different_solution(
    exercise: exercises.Exercise,
) -> None:
    start, solution = exercise.starting.read_text(), exercise.solution.read_text()
    assert start != solution
    for source in (start, solution):
        ast.parse(source)  # both are Python a learner can run
    assert f"make exercise N={exercise.number}" in start  # the file says how it is graded
    assert f"stage {exercise.stage}" in start
    ids = list(kit.SERVER_ORDER if exercise.mode == "server" else kit.CLIENT_CASES)
    assert kit.selection(exercise.cases, ids) == exercise.cases


def test_the_path_sets_each_exercise_at_its_stage() -> None:
    learn = (ROOT / "docs" / "learn.md").read_text()
    stages = learn.split("\n## ")
    for exercise in exercises.EXERCISES:
        (stage,) = [s for s in stages if s.startswith(f"{exercise.stage}. ")]
        assert f"make exercise N={exercise.number}" in stage, exercise
        assert f"exercises/{exercise.file}" in stage, exercise


def test_the_solutions_are_out_of_the_learners_way() -> None:
    assert {p.name for p in exercises.STARTING.glob("*.py")} == {
        e.file for e in exercises.EXERCISES
    }
    assert not any(exercises.STARTING.rglob("solution*"))


def test_only_the_selected_cases_are_graded() -> None:
    report = Report("p.py", "server", ["echo"], only=("reach.*", "echo.small"))
    for case_id in ("server.listening", "reach.ipv4", "echo.small", "echo.large", "udp.echo"):
        report.add({"id": case_id, "verdict": "fail", "duration_s": 0.0})
    assert [c["id"] for c in report.cases] == ["server.listening", "reach.ipv4", "echo.small"]
    assert report.notes == ["graded: only the cases matching reach.*, echo.small"]
    assert Report("p.py", "server", []).selected("udp.echo")  # no selection: every case


def test_a_pattern_that_matches_no_case_is_said_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--image", "x", "--cases", "reach.*,echo.smal"]) == 2
    err = capsys.readouterr().err
    assert "no case matches 'echo.smal'" in err and "echo.small" in err
    assert main(["client", "--image", "x", "--cases", "client.nope"]) == 2


def test_the_exercise_command_lists_and_refuses_an_unknown_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["exercise"]) == 0
    out = capsys.readouterr().out
    assert all(f"docs/exercises/{e.file}" in out for e in exercises.EXERCISES)
    assert main(["exercise", "99"]) == 2
    assert "no exercise 99" in capsys.readouterr().err
    assert exercises.arguments(exercises.by_number(2))[:1] == ["client"]


def test_each_classic_mistake_names_a_command_and_a_test_that_holds_it() -> None:
    learn = (ROOT / "docs" / "learn.md").read_text()
    section = learn.split("## The classic mistakes, made visible")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 8  # the header and seven mistakes
    for row in rows[1:]:
        _, _mistake, command, seen, held_by, _ = (cell.strip() for cell in row.split("|"))
        assert command.startswith("`") and seen, row
        programs = re.findall(r"[\w/]+\.py", command)
        for program in programs:
            assert (ROOT / program).is_file(), row
        for test in re.findall(r"tests/[\w/]+\.py", held_by):
            text = (ROOT / test).read_text()
            names = [Path(p).stem for p in programs] or ["exercise"]
            assert any(name in text for name in names), (test, names)
