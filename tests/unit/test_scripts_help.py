"""Every script answers --help with what it does, and does nothing else (scripts/cluster.py once
started a cluster when asked for help)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from labstack import ROOT

SCRIPTS = sorted(p for p in (ROOT / "scripts").iterdir() if p.suffix in (".py", ".sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_says_what_it_does_and_does_nothing(script) -> None:
    runner = [sys.executable] if script.suffix == ".py" else ["bash"]
    proc = subprocess.run(
        [*runner, str(script), "--help"],
        capture_output=True,
        text=True,
        timeout=30,  # a script that starts work instead of answering is stopped here
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert len(text.split()) >= 8, text  # a sentence at least, not a bare usage line
    assert "Traceback" not in proc.stderr and "==" not in text, text  # nothing was started
