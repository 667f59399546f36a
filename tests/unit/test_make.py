"""What the make targets do, read from `make -n` (nothing is run): the demo builds only what it
needs."""

from __future__ import annotations

import subprocess

from labstack import ROOT


def dry_run(target: str) -> str:
    proc = subprocess.run(
        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
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


def test_make_test_runs_the_kits_tests_beside_the_integration_suite() -> None:
    """docs/testing.md: the kit's tests in the background while the integration suite runs, their
    output after it; CHECK_ALONGSIDE=0 runs them after it."""
    commands = dry_run("test")
    assert 'part check > "$log" 2>&1 & kit=$!' in commands, commands
    assert 'if [ "1" = 1 ]' in commands and 'wait $kit || kit_code=$?; cat "$log"' in commands
    after = subprocess.run(
        ["make", "-n", "test", "CHECK_ALONGSIDE=0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert 'if [ "0" = 1 ]' in after
