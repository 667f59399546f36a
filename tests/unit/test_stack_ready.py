"""When a stack's server counts as ready: Docker runs its health check every 5 s on the stacks
labstack brings up (tools/labstack/compose.health.yaml), and on engines before 25 its first
check comes one interval after the start, so ``wait_healthy`` runs the same check itself rather
than wait for Docker's. No engine here: a fake container and a scripted check (a real stack's
interval: test_cross_host.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from labstack import ROOT
from labstack.stack import HEALTH_OVERRIDE, Stack, StackError, on_top


class FakeContainer:
    """A container whose health check, exec'd, answers ``answers`` in turn (the last one again
    once they run out)."""

    def __init__(self, status: str, health: str) -> None:
        self.attrs: dict[str, Any] = {
            "State": {"Status": status, "Health": {"Status": health}, "ExitCode": 0},
            "RestartCount": 0,
            "Config": {"Healthcheck": {"Test": ["CMD", "python3", "-m", "labserver"]}},
        }
        self.answers: list[tuple[int, str]] = []
        self.checks = 0

    def exec_run(self, command: list[str]) -> tuple[int, bytes]:
        assert command == ["python3", "-m", "labserver"]  # the image's check, as Docker runs it
        self.checks += 1
        code, output = self.answers[min(self.checks, len(self.answers)) - 1]
        return code, output.encode()

    def reload(self) -> None:
        pass

    def logs(self, **_: object) -> bytes:
        return b""


class ScriptedStack(Stack):
    """A stack whose server is ``container``, its health check answering ``answers``."""

    def __init__(self, container: FakeContainer, answers: list[tuple[int, str]]) -> None:
        self.fake = container
        container.answers = answers

    @property
    def checks(self) -> int:
        return self.fake.checks

    def container(self, service: str) -> Any:
        return self.fake


def test_a_server_is_ready_when_its_own_check_passes_before_dockers_first() -> None:
    stack = ScriptedStack(
        FakeContainer("running", "starting"),
        [(1, "unhealthy: echo 127.0.0.1 port 65432: refused"), (0, "healthy: echo answered")],
    )
    started = time.monotonic()
    stack.wait_healthy("server", within_s=10)
    assert stack.checks == 2 and time.monotonic() - started < 2


def test_docker_saying_healthy_is_enough() -> None:
    stack = ScriptedStack(FakeContainer("running", "healthy"), [(1, "not asked")])
    stack.wait_healthy("server", within_s=1)
    assert stack.checks == 0


def test_a_check_that_never_passes_is_a_clear_error() -> None:
    stack = ScriptedStack(FakeContainer("running", "starting"), [(1, "unhealthy: app: refused")])
    with pytest.raises(StackError, match=r"gave up after 1s .* unhealthy: app: refused"):
        stack.wait_healthy("server", within_s=1)


def test_a_server_that_exited_is_said_at_once() -> None:
    stack = ScriptedStack(FakeContainer("exited", "unhealthy"), [(0, "not asked")])
    with pytest.raises(StackError, match="exited with 0 before it was healthy"):
        stack.wait_healthy("server", within_s=10)
    assert stack.checks == 0


def test_the_interval_goes_on_the_labs_compose_file_only() -> None:
    """The benchmark's compose file has no health checks and no service named server: the
    override there made compose refuse the project (the benchmark's smoke run failed)."""
    publish = ROOT / "compose.publish.yaml"
    assert on_top(None, (publish,)) == (HEALTH_OVERRIDE, publish)
    assert on_top(ROOT / "bench" / "compose.yaml", ()) == ()
    assert HEALTH_OVERRIDE.is_file()
