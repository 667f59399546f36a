"""Why a client command failed, each with its own exit status (documented in the README)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results import Endpoints, Result

EXIT_USAGE = 2  # argparse's own
EXIT_UNREACHABLE = 3
EXIT_TIMED_OUT = 4
EXIT_PROTOCOL = 5
EXIT_MISMATCH = 6
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as a shell reports it

EXIT_STATUSES = (  # for --help and the docs: every status a command can end with
    (0, "ok: every exchange completed and was checked"),
    (1, "the demo ran, but not every exchange crossed hosts"),
    (EXIT_USAGE, "usage: a bad option or LAB_* value"),
    (
        EXIT_UNREACHABLE,
        "the server could not be resolved or connected to, or the connection was lost",
    ),
    (EXIT_TIMED_OUT, "no progress within --timeout, or not done within --max-time"),
    (
        EXIT_PROTOCOL,
        "the server broke the protocol: a bad frame, an error reply, a cut-short reply",
    ),
    (EXIT_MISMATCH, "data mismatch: the echo or reply was not what was sent or due"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)


class ClientError(Exception):
    """A failure with a one-line message; what the exchange had seen (its ``endpoints``, a
    partial ``result``, figures) goes into the ``--json`` output (``details``)."""

    exit_status = 1

    def __init__(
        self,
        message: str,
        endpoints: Endpoints | None = None,
        result: Result | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.details: dict[str, Any] = {
            **(dataclasses.asdict(endpoints) if endpoints is not None else {}),
            **(result.to_json() if result is not None else {}),
            **details,
        }


class Unreachable(ClientError):
    """The server could not be resolved or connected to, or the connection was lost."""

    exit_status = EXIT_UNREACHABLE


class TimedOut(ClientError):
    """Connected, but the server stopped answering within the timeout."""

    exit_status = EXIT_TIMED_OUT


class ProtocolError(ClientError):
    """The server answered something that does not follow the protocol."""

    exit_status = EXIT_PROTOCOL


class DataMismatch(ClientError):
    """The bytes that came back are not the bytes we sent."""

    exit_status = EXIT_MISMATCH


def connection_lost(where: str, exc: OSError, endpoints: Endpoints | None = None) -> Unreachable:
    """The connection broke mid-exchange (reset, broken pipe): retryable, like unreachable."""
    return Unreachable(f"{where}: connection lost ({exc.strerror or exc})", endpoints)
