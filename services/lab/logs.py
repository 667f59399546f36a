"""Logging set-up, called once from each program's main().

Two forms (``LAB_LOG_FORMAT``): ``text`` for people (the default: time of day, level, logger,
message) and ``json`` for programs: one object per line with the time (date, time and UTC
offset), the level, the logger, the event, the message, and the line's figures as fields
(``conn``, ``peer``, ``reason``, ``rx``, ``tx``, ... where the line has them), so that a CI job
can assert on the server's behaviour without parsing prose.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys

FORMATS = ("text", "json")

# What every LogRecord has; anything else on a record came as ``extra=``: the line's fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event, message, and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created)
            .astimezone()
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": event_of(message),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                entry[key] = value if isinstance(value, (int, float, bool)) else str(value)
        entry["message"] = message
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def event_of(message: str) -> str:
    """A line without an ``event`` field: the words before its first colon ("listening",
    "settings", "stopped"), or its first word."""
    head = message.split(":", 1)[0] if ":" in message[:40] else message.split(" ", 1)[0]
    return head.strip().lower().replace(" ", "-")[:40] or "log"


def configure(level: str = "INFO", form: str = "text") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if form == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d %(levelname)-5s %(name)-9s %(message)s",
                datefmt="%H:%M:%S",
            )
        )
    logging.basicConfig(level=level.upper(), handlers=[handler])
