"""The CI page's summary of a JUnit report says what passed, what failed and why (the workflow
writes it into $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import runpy
from pathlib import Path

from labstack import ROOT

script = runpy.run_path(str(ROOT / "scripts" / "junit_summary.py"))
summary, slowest = script["summarise"], script["where_the_time_went"]

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="5" time="12.5">
<testcase classname="tests.unit.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.unit.test_a" name="test_bad" time="0.2">
  <failure message="AssertionError: 3 != 4">def test_bad():
&gt;   assert 3 == 4</failure></testcase>
<testcase classname="tests.integration.test_b" name="test_setup" time="0.3">
  <error message="failed on setup">StackError: server exited</error></testcase>
<testcase classname="tests.integration.test_c" name="test_x" time="0">
  <skipped type="pytest.skip" message="no Docker engine (none answers)">why</skipped></testcase>
<testcase classname="tests.integration.test_c" name="test_y" time="0">
  <skipped type="pytest.skip" message="no Docker engine (none answers)">why</skipped></testcase>
</testsuite></testsuites>
"""


def test_a_report_with_failures_names_them_with_their_messages(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(REPORT)
    text = summary(report)
    assert text.startswith("### ❌ Tests: 1 passed, 1 failed, 1 errors, 2 skipped in 12 s")
    assert "failure: <code>tests.unit.test_a::test_bad</code>" in text
    assert "AssertionError: 3 != 4" in text and ">   assert 3 == 4" in text
    assert "error: <code>tests.integration.test_b::test_setup</code>" in text
    assert "| 2 | no Docker engine (none answers) |" in text


def test_a_missing_report_says_the_tests_did_not_run(tmp_path: Path) -> None:
    assert "the tests did not run" in summary(tmp_path / "unit.xml", tmp_path / "other.xml")


def test_two_reports_are_summed(tmp_path: Path) -> None:
    (tmp_path / "unit.xml").write_text(REPORT)
    (tmp_path / "integration.xml").write_text(REPORT)
    text = summary(tmp_path / "unit.xml", tmp_path / "integration.xml")
    assert text.startswith("### ❌ Tests: 2 passed, 2 failed, 2 errors, 4 skipped in 25 s"), text


def test_where_the_time_went_names_the_slowest_modules_with_their_parts(tmp_path: Path) -> None:
    (tmp_path / "unit.xml").write_text(REPORT)
    (tmp_path / "integration.xml").write_text(REPORT.replace('time="0.3"', 'time="7.6"'))
    table = slowest(tmp_path / "unit.xml", tmp_path / "integration.xml", top=2).splitlines()
    assert table[2:] == [
        "| integration | tests.integration.test_b | 1 | 8 |",
        "| unit | tests.unit.test_a | 2 | 0 |",
    ]
