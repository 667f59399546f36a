"""Reading the server's log as the tests do, from its JSON form (the suite runs every stack with
LAB_LOG_FORMAT=json): its warnings come one event each for the first few of a kind in a window,
then one summary event ``suppressed`` with that ``kind`` and a ``count`` for the rest
(``labserver.limits.WarningLimiter``); this counts both."""

from __future__ import annotations

from labstack import ComposeStack, NotYet, wait_for


def warnings_logged(stack: ComposeStack, since: int, kind: str) -> int:
    """How many warnings of ``kind`` the server reported after ``since`` (a ``log_mark``)."""
    events = stack.server_events(since, kind=kind)
    return sum(int(e["count"]) if e["event"] == "suppressed" else 1 for e in events)


def wait_for_warnings(
    stack: ComposeStack, since: int, kind: str, count: int, within_s: float = 15
) -> int:
    """Wait until ``count`` warnings of ``kind`` are reported (summaries come once a window,
    every 5 s); return how many were."""

    def enough() -> int:
        seen = warnings_logged(stack, since, kind)
        if seen < count:
            raise NotYet(f"{seen} of {count} {kind} warnings reported")
        return seen

    return wait_for(f"{count} {kind} warnings in the server's log", enough, within_s)
