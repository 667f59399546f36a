"""Reading the server's log as the tests do: its warnings come one line each for the first few
of a kind in a window, then one summary line "suppressed N more <kind> warning(s)" for the rest
(``labserver.limits.WarningLimiter``); this counts both."""

from __future__ import annotations

import re

from labstack import ComposeStack, NotYet, wait_for


def warnings_logged(stack: ComposeStack, since: int, line_text: str, kind: str) -> int:
    """How many warnings of ``kind`` the server reported after ``since`` (a ``log_mark``)."""
    log = stack.server_log(since)
    summaries = re.findall(rf"suppressed (\d+) more {re.escape(kind)} warning", log)
    return log.count(line_text) + sum(map(int, summaries))


def wait_for_warnings(
    stack: ComposeStack, since: int, line_text: str, kind: str, count: int, within_s: float = 15
) -> int:
    """Wait until ``count`` warnings of ``kind`` are reported (summaries come once a window,
    every 5 s); return how many were."""

    def enough() -> int:
        seen = warnings_logged(stack, since, line_text, kind)
        if seen < count:
            raise NotYet(f"{seen} of {count} {kind} warnings reported")
        return seen

    return wait_for(f"{count} {kind} warnings in the server's log", enough, within_s)
