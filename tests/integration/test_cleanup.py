"""The harness leaves nothing behind: not after use, not when a test raises, not when `up` fails."""

from __future__ import annotations

import pytest
from labstack import ComposeStack, StackError


def test_nothing_remains_after_a_stack_whose_test_raised() -> None:
    stack = ComposeStack()
    with pytest.raises(RuntimeError, match="the test failed"), stack:
        assert stack.run_client("greet").exit_code == 0
        # A client run that outlives its bound is killed, and said so, in the client host.
        with pytest.raises(StackError, match=r"did not finish within 2s \(killed\)"):
            stack.run_client("echo", "--deadline", "60", "--host", "nowhere", timeout_s=2)
        commands = [row[-1] for row in stack.client_host().top()["Processes"]]
        assert commands and not any("python" in command for command in commands), commands
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
