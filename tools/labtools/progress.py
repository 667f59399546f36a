"""Where a long piece of work is and about how long is left: one updating line on a terminal,
plain lines otherwise (a CI log keeps each step). The estimate comes from the plan: the steps
still to do, each taking what the steps so far took on average (before the first one ends,
what the plan expects of a step)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    def __init__(
        self, name: str, total: int, expected_step_s: float, stream: TextIO | None = None
    ) -> None:
        self.name, self.total, self.expected_step_s = name, total, expected_step_s
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty()
        self.done_steps = 0
        self.started = time.monotonic()
        self.open_line = False

    def left_s(self) -> float:
        """About how long the steps not yet finished will take."""
        per_step = (
            (time.monotonic() - self.started) / self.done_steps
            if self.done_steps
            else self.expected_step_s
        )
        return per_step * (self.total - self.done_steps)

    def step(self, what: str) -> None:
        """Step ``what`` begins (the ones before it are done)."""
        line = (
            f"{self.name}: [{self.done_steps + 1}/{self.total}] {what} "
            f"(about {duration(self.left_s())} left)"
        )
        self.done_steps += 1
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.open_line = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own, not overwritten (the updating line moves below it)."""
        if self.open_line:
            self.stream.write("\r\033[K")
            self.open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, text: str) -> None:
        self.say(f"{self.name}: {text} in {duration(time.monotonic() - self.started)}")
