"""A check's verdicts as people and programs read them: a table in the terminal (colour on a TTY),
one JSON object (``REPORT=path/report.json``), and JUnit XML beside it (``report.xml``) for CI.

    {"program": ..., "mode": "server" | "client", "run": id, "protocols": [...],
     "exit_status": 0 | 1,
     "summary": {"pass": n, "fail": n, "info": n, "n/a": n},
     "cases": [{"id", "verdict", "expected", "observed", "hint", "duration_s",
                "capture"?, "ladder"?}]}
"""

from __future__ import annotations

import fnmatch
import json
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

VERDICTS = ("pass", "fail", "info", "n/a")
COLOURS = {"pass": "32", "fail": "31", "info": "36", "n/a": "2"}


@dataclass
class Report:
    program: str
    mode: str
    protocols: list[str]
    cases: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the kit saw of the program itself
    run: str = ""  # the run's id: the value of the org.sockets-lab.check label on what it made
    only: tuple[str, ...] = ()  # the cases graded (fnmatch patterns); none: every case

    def __post_init__(self) -> None:
        if self.only:
            self.notes.append(f"graded: only the cases matching {', '.join(self.only)}")

    def selected(self, case_id: str) -> bool:
        """Whether ``case_id`` is graded. ``server.listening`` always is: the rest stand on it."""
        return (
            not self.only
            or case_id == "server.listening"
            or any(fnmatch.fnmatchcase(case_id, pattern) for pattern in self.only)
        )

    def add(self, case: dict[str, Any]) -> None:
        if self.selected(case["id"]):
            self.cases.append(case)

    def not_applicable(self, case_id: str, expected: str, why: str) -> None:
        self.add(
            {
                "id": case_id,
                "verdict": "n/a",
                "expected": expected,
                "observed": why,
                "hint": "",
                "duration_s": 0.0,
            }
        )

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(case["verdict"] for case in self.cases)
        return {verdict: counts.get(verdict, 0) for verdict in VERDICTS}

    @property
    def exit_status(self) -> int:
        return 1 if self.summary["fail"] else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "mode": self.mode,
            "run": self.run,
            "protocols": self.protocols,
            "exit_status": self.exit_status,
            "summary": self.summary,
            "notes": self.notes,
            "cases": self.cases,
        }

    def write(self, path: Path) -> Path:
        """``path`` (JSON) and the JUnit XML beside it; returns the XML's path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        xml = path.with_name("report.xml")
        ET.ElementTree(self.junit()).write(xml, encoding="unicode", xml_declaration=True)
        return xml

    def junit(self) -> ET.Element:
        summary = self.summary
        suite = ET.Element(
            "testsuite",
            name=f"labcheck.{self.mode}",
            tests=str(len(self.cases)),
            failures=str(summary["fail"]),
            skipped=str(summary["info"] + summary["n/a"]),
            time=f"{sum(c['duration_s'] for c in self.cases):.3f}",
        )
        for case in self.cases:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=f"{self.mode}.{self.program}",
                name=case["id"],
                time=f"{case['duration_s']:.3f}",
            )
            if case["verdict"] == "fail":
                failure = ET.SubElement(element, "failure", message=case["observed"][:500])
                failure.text = (
                    f"expected: {case['expected']}\nobserved: {case['observed']}\n"
                    f"hint: {case['hint']}"
                )
            elif case["verdict"] in ("info", "n/a"):
                ET.SubElement(
                    element, "skipped", message=f"{case['verdict']}: {case['observed'][:500]}"
                )
        return suite

    def print_table(self, out: TextIO = sys.stdout) -> None:
        colour = out.isatty()

        def paint(text: str, verdict: str) -> str:
            return f"\033[{COLOURS[verdict]}m{text}\033[0m" if colour else text

        print(
            f"labcheck {self.mode}: {self.program} ({', '.join(self.protocols) or 'nothing'})",
            file=out,
        )
        for note in self.notes:
            print(f"  note: {note}", file=out)
        width = max((len(c["id"]) for c in self.cases), default=10)
        # Cases that do not apply for one reason ("not served") are one line, not a dozen.
        skipped: dict[str, list[str]] = {}
        for case in self.cases:
            if case["verdict"] == "n/a":
                skipped.setdefault(case["observed"], []).append(case["id"])
        grouped = {why for why, ids in skipped.items() if len(ids) > 2}
        for case in self.cases:
            verdict = case["verdict"]
            if verdict == "n/a" and case["observed"] in grouped:
                ids = skipped[case["observed"]]
                if case["id"] == ids[0]:
                    print(
                        f"  {paint('N/A ', 'n/a')}  "
                        + _wrapped(
                            "", f"{len(ids)} cases, {case['observed']}: " + ", ".join(ids), " " * 8
                        ).lstrip(),
                        file=out,
                    )
                continue
            print(
                f"  {paint(verdict.upper().ljust(4), verdict)}  {case['id'].ljust(width)}  "
                f"{case['expected']}",
                file=out,
            )
            indent = " " * (width + 10)
            if verdict in ("fail", "info", "n/a"):
                print(_wrapped("saw:  ", case["observed"], indent), file=out)
            if verdict == "fail" and case.get("hint"):
                print(_wrapped(paint("hint:", "info") + " ", case["hint"], indent), file=out)
            if case.get("capture"):
                print(f"{indent}capture: {_relative(case['capture'])}", file=out)
            if case.get("ladder"):
                print(f"{indent}ladder:  {_relative(case['ladder'])}", file=out)
        summary = self.summary
        print(
            f"  {summary['pass']} passed, {summary['fail']} failed, {summary['info']} "
            f"informational, {summary['n/a']} not applicable",
            file=out,
        )


def _relative(path: str) -> str:
    """A path as the reader types it: from the current directory, when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _wrapped(label: str, text: str, indent: str) -> str:
    """``label`` then ``text`` wrapped to the terminal's usual width, its lines aligned."""
    lines = textwrap.wrap(text, 90) or [""]
    return "\n".join(indent + (label if i == 0 else " " * 6) + line for i, line in enumerate(lines))
