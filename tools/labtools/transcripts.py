"""``make transcripts``: the terminal sessions quoted in the documents, run again and written in.

A document quotes a command's output in a block like this one, and never by hand:

    <!-- transcript: make -s check-server PROGRAM=docs/check/echo_server_1.py -->
    ```text
    ...what the command printed...
    ```
    <!-- generated 2026-12-01 -->

This runs each block's command from the repository's root (``--only`` a document, or one whose
command contains a string), puts what it printed (stdout and stderr, without colour) in the
block, and dates it. A command's exit status is part of the story, not an error: the check of a
broken program exits 1. ``blocks`` is what the tests read to hold the documents to the code.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labstack import ROOT

DOCUMENTS = ("README.md", "docs/*.md")
BLOCK = re.compile(
    r"<!-- transcript: (?P<command>[^\n]+?) -->\n```text\n(?P<output>.*?)```\n"
    r"<!-- generated (?P<date>[0-9-]+) -->",
    re.S,
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colour, and a terminal's line erasing
RUN_WITHIN_S = 600


@dataclass(frozen=True)
class Block:
    document: Path
    command: str
    output: str
    date: str


def documents() -> list[Path]:
    return sorted({path for pattern in DOCUMENTS for path in ROOT.glob(pattern)})


def blocks(document: Path) -> list[Block]:
    text = document.read_text()
    return [Block(document, m["command"], m["output"], m["date"]) for m in BLOCK.finditer(text)]


def run(command: str) -> str:
    """What ``command`` prints, from the repository's root, without colour."""
    # As a reader runs it: not inside `make transcripts` (make would say make[1]).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    env.update(NO_COLOR="1", TERM="dumb")
    proc = subprocess.run(  # noqa: S602 (the commands are the documents' own, in this repo)
        command,
        shell=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_WITHIN_S,
        check=False,
    )
    output = ANSI.sub("", proc.stdout + proc.stderr)
    return output.rstrip("\n") + "\n"


def refresh(document: Path, only: str = "") -> int:
    """Run the document's blocks (those whose command contains ``only``); how many ran."""
    today = datetime.date.today().isoformat()
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if only not in match["command"]:
            return match[0]
        count += 1
        print(f"transcripts: {document.relative_to(ROOT)}: {match['command']}", flush=True)
        output = run(match["command"])
        return (
            f"<!-- transcript: {match['command']} -->\n```text\n{output}```\n"
            f"<!-- generated {today} -->"
        )

    text = document.read_text()
    document.write_text(BLOCK.sub(replace, text))
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make transcripts", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default="", help="only blocks whose document path or command contains this"
    )
    args = parser.parse_args(argv)
    ran = 0
    for document in documents():
        in_path = args.only and args.only in str(document.relative_to(ROOT))
        ran += refresh(document, "" if in_path else args.only)
    print(f"transcripts: {ran} block(s) run again")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
