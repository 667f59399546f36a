"""The harness leaves nothing behind: not after use, not when a test raises, not when `up` fails."""

from __future__ import annotations

import pytest
from labstack import ComposeStack, StackError
from labstack.clients import KILLED, BackgroundExec

STOPPED = 128 + 15  # SIGTERM, passed on by timeout(1)


def test_nothing_remains_after_a_stack_whose_test_raised() -> None:
    stack = ComposeStack()
    with pytest.raises(RuntimeError, match="the test failed"), stack:
        assert stack.run_client("greet").exit_code == 0
        # A client run that outlives its bound is killed, and said so, in the client host.
        with pytest.raises(StackError, match=r"did not finish within 2s \(killed\)"):
            stack.run_client("echo", "--deadline", "60", "--host", "nowhere", timeout_s=2)
        commands = [row[-1] for row in stack.client_host().top()["Processes"]]
        assert commands and not any("python" in command for command in commands), commands
        # A background exec (the kit's proving servers) ends when stopped, or at its bound.
        sleeper = ["python3", "-c", "import time; print('up', flush=True); time.sleep(60)"]
        stopped = BackgroundExec(stack.client_host(), sleeper, 60)
        stopped.wait_for_output("up", 15)
        assert stopped.wait(0.5) is None  # still running
        stopped.stop(within_s=5)
        assert stopped.wait(0) == STOPPED
        assert BackgroundExec(stack.client_host(), sleeper, 1).wait(15) == KILLED
        commands = [row[-1] for row in stack.client_host().top()["Processes"]]
        assert not any("python" in command for command in commands), commands
        stack.start_client("echo", "--deadline", "60", "--host", "nowhere")  # still running
        assert stack.leftovers()  # there is something to clean up
        raise RuntimeError("the test failed")
    assert stack.leftovers() == []


def test_nothing_remains_when_up_itself_fails() -> None:
    # A server that exits at once (and is restarted, and exits again): `up` succeeds, the
    # health wait fails at the first exit, with the server's own words; the network exists.
    stack = ComposeStack(env={"LAB_ECHO_PORT": "not-a-port"})
    with (
        pytest.raises(
            StackError,
            match=r"server exited .* before it was healthy:\n"
            r"labserver: LAB_ECHO_PORT='not-a-port' is not a valid",
        ),
        stack,
    ):
        pytest.fail("the stack should not have come up")
    assert stack.leftovers() == []
