"""The learning path's exercises (docs/learn.md): a starting file each, graded by the kit on the
cases the exercise is about. ``make exercise N=1`` grades the learner's copy in
docs/exercises/; the reference solutions live in tests/solutions/, out of the way, and the
suite checks that every starting file fails its exercise and every solution passes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labstack import ROOT

STARTING = ROOT / "docs" / "exercises"
SOLUTIONS = ROOT / "tests" / "solutions"


@dataclass(frozen=True)
class Exercise:
    number: int
    stage: int  # of docs/learn.md
    task: str
    file: str  # in docs/exercises/ (the starting file) and tests/solutions/ (a solution)
    mode: str  # "server" or "client"
    protocols: tuple[str, ...]
    cases: tuple[str, ...]  # what it is graded on (the kit's case ids or patterns)

    @property
    def starting(self) -> Path:
        return STARTING / self.file

    @property
    def solution(self) -> Path:
        return SOLUTIONS / self.file


EXERCISES = (
    Exercise(
        1,
        2,
        "make the echo server reachable from other hosts, over IPv4 and IPv6",
        "1_reach_server.py",
        "server",
        ("echo",),
        ("reach.*", "echo.small", "echo.half-close", "echo.close-seen"),
    ),
    Exercise(
        2,
        3,
        "make the client print the whole reply, however it arrives",
        "2_pieces_client.py",
        "client",
        ("echo",),
        ("client.reaches-server", "client.segments", "client.late-accept", "client.half-close"),
    ),
    Exercise(
        3,
        4,
        "make the UDP server send every datagram back whole, to whoever sent it",
        "3_udp_server.py",
        "server",
        ("udp",),
        ("udp.*",),
    ),
    Exercise(
        4,
        5,
        "make the app server answer a request split anywhere, and two sent back to back",
        "4_framed_server.py",
        "server",
        ("app",),
        ("reach.*", "app.search", "app.binary", "app.split-anywhere", "app.pipelining"),
    ),
    Exercise(
        5,
        6,
        "make the echo server serve many clients at once",
        "5_many_clients_server.py",
        "server",
        ("echo",),
        ("echo.small", "echo.two-clients", "echo.fifty-clients", "echo.idle-client"),
    ),
)


def by_number(number: int) -> Exercise:
    for exercise in EXERCISES:
        if exercise.number == number:
            return exercise
    raise KeyError(number)


def listing() -> str:
    lines = ["The exercises (docs/learn.md; grade one with: make exercise N=<number>):"]
    for e in EXERCISES:
        lines.append(f"  {e.number}  stage {e.stage}  {e.task}  (docs/exercises/{e.file})")
    return "\n".join(lines)


def arguments(exercise: Exercise, program: Path | None = None) -> list[str]:
    """The kit's command line that grades ``program`` (the starting file) on ``exercise``."""
    return [
        exercise.mode,
        "--program",
        str(program or exercise.starting),
        *(["--protocols", ",".join(exercise.protocols)] if exercise.mode == "server" else []),
        "--cases",
        ",".join(exercise.cases),
    ]
