"""An interrupted test lets the lab command it started finish its teardown (tests/children.py);
``subprocess.run`` killed it at once."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import children
import pytest

# A child that tears down on SIGINT: it takes 0.5 s, then writes that it has; a second SIGINT
# meanwhile cuts it short, as a second Ctrl-C would.
CHILD = """
import os, pathlib, signal, sys, time
signals = 0
def teardown(*_):
    global signals
    signals += 1
    if signals > 1:
        pathlib.Path(sys.argv[1]).write_text("cut short")
        os._exit(1)
    print("tearing down", flush=True)
    time.sleep(0.5)
    pathlib.Path(sys.argv[1]).write_text("torn down")
    sys.exit(130)
signal.signal(signal.SIGINT, teardown)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_child_past_its_timeout_is_told_and_may_tear_down(tmp_path: Path) -> None:
    done = tmp_path / "done"
    with pytest.raises(subprocess.TimeoutExpired):
        children.run([sys.executable, "-c", CHILD, str(done)], timeout_s=5)
    assert done.read_text() == "torn down"


def test_a_child_interrupted_with_the_test_is_not_signalled_again(tmp_path: Path) -> None:
    """Ctrl-C reached it too: it is waited for, not signalled again (nor killed)."""
    done = tmp_path / "done"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(done)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    child.send_signal(signal.SIGINT)  # as the terminal's Ctrl-C does
    assert child.stdout.readline() == "tearing down\n"
    children.let_it_clean_up(child, interrupted_with_it=True)
    assert child.returncode == 130 and done.read_text() == "torn down"


def test_which_interrupts_came_from_the_terminal() -> None:
    assert children.from_the_terminal(KeyboardInterrupt())
    assert not children.from_the_terminal(KeyboardInterrupt("signal 15"))
    assert not children.from_the_terminal(subprocess.TimeoutExpired(["x"], 1))


def test_a_child_that_ends_is_what_subprocess_run_gives() -> None:
    result = children.run([sys.executable, "-c", "print('out'); exit(3)"], timeout_s=30)
    assert (result.returncode, result.stdout) == (3, "out\n")
