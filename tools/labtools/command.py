"""How the lab's host commands start (scripts/*.py and ``python -m labtools.<command>`` alike):
SIGTERM, a CI cancelling the job, tears down as Ctrl-C does, so nothing is left behind. The
scripts called ``main()`` directly, so only the ``python -m`` forms did that: a cancelled
`make bench`, `make capture` or `make cluster` was killed outright."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


def run(main: Callable[[], int], interrupted: str | None = None) -> int:
    """``main()`` with SIGTERM raising KeyboardInterrupt; with ``interrupted``, an interrupt
    ends in that one line and status 130 instead of a traceback (once ``main``'s own
    teardown has run)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if interrupted is None:
        return main()
    try:
        return main()
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
