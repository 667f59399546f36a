"""The lab's own commands run as a test's children (the kit, the benchmark, the capture, the
soak), each of which tears down what it made when interrupted. ``subprocess.run`` kills its
child (SIGKILL) when the test is interrupted or its timeout passes, which cut those teardowns
short: a Ctrl-C during the kit's part of `make test` left the benchmark's stack and two kit
networks behind. ``run`` lets the child finish its own teardown instead, within ``CLEANUP_S``,
also when pytest-xdist ends the worker meanwhile (its output goes to files, so the orphan
finishes undisturbed)."""

from __future__ import annotations

import signal
import subprocess
import tempfile
from typing import Any

CLEANUP_S = 90  # for a child's teardown after an interrupt: compose down, a kit's sweep


def run(command: list[str], timeout_s: float, **options: Any) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)``, but a
    child that is still running when the test is interrupted (Ctrl-C; CI's SIGTERM, which the
    suite turns into KeyboardInterrupt) or when ``timeout_s`` passes gets SIGINT and time to
    clean up (see ``let_it_clean_up``) before anything stronger. Its output goes to files, not
    pipes: a worker that pytest-xdist ends meanwhile closes no pipe under it, so the child's
    teardown is not cut short by a broken pipe (the benchmark's was: its stack stayed)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, **options)
        try:
            child.wait(timeout=timeout_s)
        except BaseException as exc:
            let_it_clean_up(child, interrupted_with_it=from_the_terminal(exc))
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            command,
            child.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def from_the_terminal(exc: BaseException) -> bool:
    """Ctrl-C in a terminal signals every process of the run, the child too; the suite's own
    KeyboardInterrupt for SIGTERM says which signal it was (tests/integration/conftest.py)."""
    return type(exc) is KeyboardInterrupt and not exc.args


def let_it_clean_up(child: subprocess.Popen[Any], interrupted_with_it: bool) -> None:
    """SIGINT, unless it had one with us (a second one could cut its teardown short), then up
    to ``CLEANUP_S`` for it to end by itself; SIGKILL after that."""
    if child.poll() is not None:
        return
    if not interrupted_with_it:
        child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=CLEANUP_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
