"""What the make targets do, read from `make -n` (nothing is run): the demo builds only what it
needs."""

from __future__ import annotations

import functools
import re
import subprocess
import sys

import pytest
from _pytest.mark.expression import Expression
from labstack import ROOT


def dry_run(target: str, *variables: str) -> str:
    proc = subprocess.run(
        ["make", "-n", target, *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout


def test_make_up_builds_the_server_and_client_only() -> None:
    commands = dry_run("up")
    assert "build --quiet server client" in commands, commands
    assert "fetch-wheels" not in commands and "--profile tools" not in commands, commands
    assert "compose up --exit-code-from client" in commands


def test_make_build_builds_the_tools_image_too() -> None:
    commands = dry_run("build")
    assert "fetch-wheels" in commands and "--profile tools build --quiet tools" in commands


# One collection of the integration suite prints each test with its markers' names; the
# expressions are then evaluated by pytest's own parser of -m (its Expression; a name matches a
# test that has that marker). One collection costs about 1.8 CPU-s: this took eleven, one per
# expression.
LIST_MARKS = """
import sys, pytest
class Marks:
    def pytest_collection_finish(self, session):
        for item in session.items:
            names = sorted({mark.name for mark in item.iter_markers()})
            print("MARKS", item.nodeid, ",".join(names), sep="\t")
sys.exit(pytest.main(sys.argv[1:], plugins=[Marks()]))
"""


@functools.cache
def integration_tests() -> dict[str, frozenset[str]]:
    """Every integration test (collected only, nothing run) and its markers' names."""
    proc = subprocess.run(
        [
            *(sys.executable, "-c", LIST_MARKS),
            *("--collect-only", "-q", "-p", "no:cacheprovider", "tests/integration"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines() if line.startswith("MARKS\t")]
    return {nodeid: frozenset(names.split(",")) - {""} for _, nodeid, names in rows}


def collected(mark: str | None) -> set[str]:
    """The integration tests that ``-m mark`` selects."""
    tests = integration_tests()
    if not mark:
        return set(tests)
    expression = Expression.compile(mark)

    def selects(names: frozenset[str]) -> bool:
        def has(name: str, /, **arguments: object) -> bool:
            assert not arguments, f"{mark!r}: markers' arguments are not read here"
            return name in names

        return expression.evaluate(has)

    return {nodeid for nodeid, names in tests.items() if selects(names)}


@pytest.mark.parametrize(("target", "selects"), [("test", None), ("test-quick", "not slow")])
def test_make_test_runs_every_integration_test_in_exactly_one_part(
    target: str, selects: str | None
) -> None:
    """docs/testing.md: the parts of `make test` (marker expressions read from `make -n`)
    divide the integration suite between them: nothing dropped, nothing run twice; and those
    of `make test-quick` divide what ``-m "not slow"`` selects (they once joined the words of
    their expressions: "alonenot slow")."""
    commands = dry_run(target)
    marks = dict(re.findall(r'(\w+)\) args="[^"]*tests/integration" +mark="([^"]*)"', commands))
    assert sorted(marks) == ["alone", "check", "cluster", "integration"], commands
    everything = collected(selects)
    parts = {part: collected(mark) for part, mark in marks.items()}
    if target == "test":
        assert all(parts.values()), parts  # each part has tests
    assert sum(len(tests) for tests in parts.values()) == len(everything) > 100
    assert set().union(*parts.values()) == everything


def test_the_quick_suite_leaves_out_the_slow_groups() -> None:
    """docs/testing.md: `make test-quick` (pull requests) leaves out the fault, bad-input,
    hostile-peer, cluster and soak groups and the benchmark's smoke run (the soak, unmarked,
    once ran its 60 s in every quick run)."""
    slow = ("test_faults", "test_bad_input", "test_hostile", "test_cluster", "test_soak")
    quick = collected("not slow")
    assert quick, "the quick suite selects nothing"
    left_in = sorted(test for test in quick if test.split("::")[0].split("/")[-1][:-3] in slow)
    assert left_in == [], left_in
    assert not any("test_bench_smoke" in test for test in quick)


def test_make_test_runs_the_cluster_and_the_kit_beside_the_integration_suite() -> None:
    """docs/testing.md: the cluster's and the kit's tests in the background while the unit
    tests and then the integration suite run, their output after it, the tests marked alone
    last; ALONGSIDE=0 runs them all one after another."""
    commands = dry_run("test")
    beside = (
        'part cluster > "$logs/cluster" 2>&1 & cluster=$!',
        'part check > "$logs/check" 2>&1 & kit=$!',
    )
    assert all(command in commands for command in beside), commands
    # they start first, so that they also fill what the unit tests leave of the cores
    assert max(commands.index(command) for command in beside) < commands.index("part unit ||")
    assert commands.index("part unit ||") < commands.index("part integration ||")
    # Interrupted (status 2, Ctrl-C), the unit tests end make test only once the parts in the
    # background have ended too (they tear down on Ctrl-C), not at once, leaving them running
    assert commands.index("wait $kit") < commands.index("judge $unit_code")
    assert "if [ $unit_code != 2 ]; then part integration" in commands
    assert commands.index("part integration") < commands.index("part alone"), commands
    assert 'if [ "1" = 1 ]' in commands
    assert 'if [ "0" = 1 ]' in dry_run("test", "ALONGSIDE=0")
