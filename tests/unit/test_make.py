"""What the make targets do, read from `make -n` (nothing is run): the demo builds only what it
needs."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
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


def collected(mark: str | None) -> set[str]:
    """The integration tests that ``-m mark`` selects (collected only, nothing run)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + (["-m", mark] if mark else [])
        + ["tests/integration"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr
    return {line for line in proc.stdout.splitlines() if "::" in line}


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
    with ThreadPoolExecutor() as pool:
        everything = pool.submit(collected, selects)
        parts = dict(zip(marks, pool.map(collected, marks.values()), strict=True))
    if target == "test":
        assert all(parts.values()), parts  # each part has tests
    assert sum(len(tests) for tests in parts.values()) == len(everything.result()) > 100
    assert set().union(*parts.values()) == everything.result()


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
    """docs/testing.md: the cluster's and the kit's tests in the background while the
    integration suite runs, their output after it, the tests marked alone last;
    ALONGSIDE=0 runs the middle three one after another."""
    commands = dry_run("test")
    beside = (
        'part cluster > "$logs/cluster" 2>&1 & cluster=$!',
        'part check > "$logs/check" 2>&1 & kit=$!',
    )
    assert all(command in commands for command in beside), commands
    assert commands.index("part integration") < commands.index("part alone"), commands
    assert 'if [ "1" = 1 ]' in commands
    assert 'if [ "0" = 1 ]' in dry_run("test", "ALONGSIDE=0")
