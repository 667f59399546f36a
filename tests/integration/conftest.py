"""Integration fixtures: one stack for the session, logs on failure, nothing left behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Generator, Iterator

import docker
import pluggy
import pytest
from labstack import ComposeStack
from labstack.lifecycle import Lifecycle


def pytest_configure(config: pytest.Config) -> None:
    # CI cancels with SIGTERM: treat it like Ctrl-C so every stack is still torn down.
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    # A shell starts background jobs with SIGINT ignored; Ctrl-C must still tear down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Every stack the suite starts logs JSON (compose.yaml passes LAB_LOG_FORMAT through): the
    # tests assert on the server's events and their fields (Stack.server_events), not on prose.
    os.environ["LAB_LOG_FORMAT"] = "json"


def docker_unreachable() -> str | None:
    """Why no Docker engine can be used here, or None if one answers."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        docker.from_env(timeout=10).ping()
    except Exception as exc:  # no socket, no permission, a DOCKER_HOST that is not there
        return f"none answers at {where}: {type(exc).__name__}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a Docker engine, every integration test is skipped with one reason (the unit
    tests still run). Under pytest-xdist (``make test``: ``--dist loadgroup``) a module's
    tests stay on one worker, in order, sharing its module fixtures (own_stack, the cluster),
    unless the module says ``SPREAD = True`` (each test stands alone: the kit's programs).

    The tests marked ``with_kit`` (the benchmark's smoke run, the soak: the longest of the
    kit's part) come first, so that its workers begin with them and share out the rest after:
    collected last, the soak's 66 s once ran after everything else, and the part took 351 s for
    645 s of tests."""
    items.sort(key=lambda item: item.get_closest_marker("with_kit") is None)  # stable
    ours = [item for item in items if "integration" in item.path.parts]
    why = docker_unreachable() if ours else None
    for item in ours:
        if why is not None:
            item.add_marker(
                pytest.mark.skip(reason=f"no Docker engine ({why}); the unit tests ran")
            )
        elif not getattr(getattr(item, "module", None), "SPREAD", False):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.fixture(scope="session")
def stack() -> Iterator[ComposeStack]:
    """The shared stack (server only; clients are one-off containers). Tests must not break it."""
    with ComposeStack() as shared:
        yield shared


@pytest.fixture(scope="module")
def own_stack() -> Iterator[ComposeStack]:
    """A stack of the module's own, for tests that stop, kill or cut off the server."""
    with ComposeStack() as mine:
        yield mine


PER_ADDRESS = 100  # the per-address cap of the bounded stacks (test_bounded.py, test_limits.py)


@pytest.fixture(scope="module")
def bounded() -> Iterator[ComposeStack]:
    """A stack of the module's own under compose.yaml's limits (128m), with a per-address cap
    of PER_ADDRESS; its server process as it started is ``first_process``."""
    with ComposeStack(env={"LAB_MAX_CONNECTIONS_PER_IP": str(PER_ADDRESS)}) as stack:
        stack.first_process = stack.process_identity()
        yield stack


@pytest.fixture(scope="module")
def budget(bounded: ComposeStack) -> int:
    """The bounded stack's memory budget, as its server says at start."""
    return int(bounded.wait_for_server_event(0, event="budget")["bytes"])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
    call: pytest.CallInfo[None],
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for running in Lifecycle.active:
            try:
                report.sections.append((f"container logs: {running.project}", running.logs()))
            except Exception as exc:  # the report must not fail because the engine did
                report.sections.append(
                    (f"container logs: {running.project}", f"unavailable: {exc}")
                )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every fixture is torn down: nothing labelled with this run's projects may remain."""
    left = {}
    for made in Lifecycle.created:
        found = made.sweep()
        if found:
            left[made.project] = found
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"LEFT BEHIND (now removed): {left}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
