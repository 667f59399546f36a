#!/usr/bin/env python3
"""A JUnit XML report (pytest's ``--junitxml``) as Markdown for a CI run's page (GitHub's
``$GITHUB_STEP_SUMMARY``): the totals, then each failure and error with the first lines of its
message, then the reasons tests were skipped. Standard library only, so it runs on any runner."""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

MESSAGE_LINES = 12  # of each failure's text, on the page (the whole text is in the artifact)


def summarise(*reports: Path) -> str:
    """The reports (pytest --junitxml files: make test writes one per part, unit.xml to alone.xml)
    summed up as one page."""
    roots = list(_parsed(reports).values())
    if not roots:
        names = ", ".join(f"`{report}`" for report in reports)
        return f"### Tests\n\nNo {names}: the tests did not run (see the log above).\n"
    cases = [case for root in roots for case in root.iter("testcase")]
    outcome: Counter[str] = Counter()
    failures: list[tuple[str, str, str]] = []
    skipped: Counter[str] = Counter()
    seconds = sum(float(suite.get("time", 0)) for root in roots for suite in root.iter("testsuite"))
    for case in cases:
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            outcome[bad.tag] += 1
            text = (bad.get("message") or "") + "\n" + (bad.text or "")
            failures.append((bad.tag, name, "\n".join(text.strip().splitlines()[:MESSAGE_LINES])))
        elif skip is not None:
            outcome["skipped"] += 1
            skipped[skip.get("message") or "no reason given"] += 1
        else:
            outcome["passed"] += 1
    icon = "❌" if failures else "✅"
    lines = [
        f"### {icon} Tests: {outcome['passed']} passed, {outcome['failure']} failed, "
        f"{outcome['error']} errors, {outcome['skipped']} skipped in {seconds:.0f} s",
        "",
    ]
    for tag, name, text in failures:
        lines += [f"<details><summary>{tag}: <code>{name}</code></summary>", "", "```text"]
        lines += [text.replace("```", "'''"), "```", "</details>", ""]
    if skipped:
        lines += ["| skipped | why |", "|---:|---|"]
        lines += [f"| {n} | {why.replace('|', '/')} |" for why, n in skipped.most_common()]
    return "\n".join(lines) + "\n"


def where_the_time_went(*reports: Path, top: int = 15) -> str:
    """The ``top`` test modules by test time, each with its part (the report's name: make test
    writes unit.xml to alone.xml): what to move when one part is the long pole. Test time, not
    wall time: a part on two workers counts both."""
    spent: dict[tuple[str, str], list[float]] = {}  # (part, module): [tests, seconds]
    for report, root in _parsed(reports).items():
        for case in root.iter("testcase"):
            counts = spent.setdefault((report.stem, _module(case.get("classname", ""))), [0, 0.0])
            counts[0] += 1
            counts[1] += float(case.get("time", 0))
    slowest = sorted(spent.items(), key=lambda item: -item[1][1])[:top]
    lines = ["| part | module | tests | seconds |", "|---|---|---:|---:|"]
    lines += [
        f"| {part} | {module} | {tests:.0f} | {seconds:.0f} |"
        for (part, module), (tests, seconds) in slowest
    ]
    return "\n".join(lines) + "\n"


def _parsed(reports: tuple[Path, ...]) -> dict[Path, ET.Element]:
    """Each report that exists, parsed."""
    return {
        report: ET.parse(report).getroot()  # noqa: S314 (our pytest wrote it)
        for report in reports
        if report.exists()
    }


def _module(classname: str) -> str:
    """tests.integration.test_b.TestX -> tests.integration.test_b"""
    parts = classname.split(".")
    ends = [i for i, part in enumerate(parts) if part.startswith("test_")]
    return ".".join(parts[: ends[0] + 1] if ends else parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "reports", type=Path, nargs="+", help="JUnit XML files (pytest --junitxml=...)"
    )
    parser.add_argument(
        "--modules",
        type=int,
        default=0,
        metavar="N",
        help="then the N test modules that took longest, with their parts (default: none)",
    )
    args = parser.parse_args(argv)
    sys.stdout.write(summarise(*args.reports))
    if args.modules:
        sys.stdout.write("\n" + where_the_time_went(*args.reports, top=args.modules))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
