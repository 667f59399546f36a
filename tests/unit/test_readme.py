"""The README is short and true: at most 250 lines; its quick start quotes what the current demo
prints (12 exchanges, checked against the demo's own code); its table of make targets is what
`make help` prints; its exit statuses are the client's; every link in it and in docs/ leads to a
file that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from labclient.errors import EXIT_STATUSES
from labstack import ROOT
from labtools import transcripts

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_the_readme_is_at_most_250_lines() -> None:
    assert len(README.read_text().splitlines()) <= 250


def _block(command: str) -> transcripts.Block:
    (block,) = [b for b in transcripts.blocks(README) if b.command == command]
    return block


DEMO_EXCHANGES = 12  # what tests/integration/test_cross_host.py holds the live demo to


def test_the_quick_start_quotes_the_current_demo() -> None:
    output = _block("make -s up").output
    exchange = r"^client-1\s+\|\s+(TCP echo|UDP echo|greeting|app)\s+IPv[46]\s"
    shown = re.findall(exchange, output, re.M)
    assert len(shown) == DEMO_EXCHANGES, shown
    assert f"verdict: all {DEMO_EXCHANGES} exchanges crossed" in output
    assert "client-1 exited with code 0" in output and "Traceback" not in output
    cross_host = (ROOT / "tests" / "integration" / "test_cross_host.py").read_text()
    assert f"verdict: all {DEMO_EXCHANGES} exchanges crossed" in cross_host


def test_the_make_targets_are_what_make_help_prints() -> None:
    printed = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert _block("make -s help").output == printed


def test_the_exit_statuses_are_the_clients() -> None:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", README.read_text(), re.M)
    assert [(int(code), meaning) for code, meaning in rows] == list(EXIT_STATUSES)


@pytest.mark.parametrize("document", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file(document: Path) -> None:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)  # not in code blocks
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#")[0]
        if not (document.parent / path).exists():
            missing.append(target)
    assert missing == []
