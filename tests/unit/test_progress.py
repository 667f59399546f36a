"""Progress lines: plain lines in a log, one updating line on a terminal, with an estimate of
what is left from the plan."""

from __future__ import annotations

import io

from labtools import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_each_step_is_a_line_with_what_is_left(monkeypatch) -> None:
    clock = iter([0.0, 10.0, 30.0])  # made; the second step begins; finished
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    bar = progress.Progress("bench", 4, expected_step_s=30, stream=out)
    bar.step("echo lab")  # nothing done yet: the plan's 30 s a step, 4 steps
    bar.step("echo asyncio")  # one done in 10 s: 3 left, 10 s each
    bar.finish("done")
    lines = out.getvalue().splitlines()
    assert lines[0] == "bench: [1/4] echo lab (about 2m00s left)"
    assert lines[1] == "bench: [2/4] echo asyncio (about 30s left)"
    assert lines[2] == "bench: done in 30s"
    assert "\r" not in out.getvalue()


def test_on_a_terminal_the_line_updates_in_place() -> None:
    out = Terminal()
    bar = progress.Progress("cluster", 2, expected_step_s=5, stream=out)
    bar.step("nodes")
    bar.say("a line that stays")
    bar.step("demo")
    text = out.getvalue()
    assert text.startswith("\r\033[Kcluster: [1/2] nodes")
    assert "\r\033[Ka line that stays\n\r\033[Kcluster: [2/2] demo" in text
