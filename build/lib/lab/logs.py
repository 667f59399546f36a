"""Logging set-up, called once from each program's main()."""

from __future__ import annotations

import logging
import sys


def configure(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stdout,
        format="%(asctime)s.%(msecs)03d %(levelname)-5s %(name)-9s %(message)s",
        datefmt="%H:%M:%S",
    )
