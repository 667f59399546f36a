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
