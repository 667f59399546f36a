"""A teardown that Ctrl-C cannot cut short (labstack.lifecycle.interrupts_deferred): a Ctrl-C
that came as a stack was being taken down once left its containers behind."""

from __future__ import annotations

import os
import signal

import pytest
from labstack.lifecycle import interrupts_deferred


def test_a_signal_during_the_teardown_waits_until_it_is_done() -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt, match="signal 2, held"), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("after the signal")  # not cut short
        os.kill(os.getpid(), signal.SIGTERM)
        steps.append("after another")
    assert steps == ["after the signal", "after another"]


def test_the_handlers_are_given_back() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with interrupts_deferred():
        pass
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_teardown_of_an_interrupted_test_lets_that_interrupt_go_on() -> None:
    """Held signals do not replace the exception the teardown runs for."""
    with pytest.raises(RuntimeError, match="the test's own"):
        try:
            raise RuntimeError("the test's own")
        finally:
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)


def test_no_signal_no_interrupt() -> None:
    with interrupts_deferred():
        done = True
    assert done
