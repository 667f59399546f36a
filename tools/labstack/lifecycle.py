"""What every test bed of the lab shares, a compose stack and a cluster alike: a context
manager that starts on enter and stops on exit (also when starting failed half-way, a test
raised, or Ctrl-C came), remembers what it created under one label, and sweeps that label at
the end, so that nothing is left behind.

    class Stack(Lifecycle):            # tools/labstack/stack.py
    class Cluster(Lifecycle):          # tools/labstack/cluster.py
        label = f"{CLUSTER_LABEL}={run}"
        def start(self) -> None: ...
        def stop(self) -> None: ...    # safe twice, and after a failed start
        def logs(self) -> str: ...     # what a failing test's report shows

The test session reads ``Lifecycle.created`` (to check nothing is left) and ``Lifecycle.active``
(whose logs a failing test shows); every subclass's instances are in both.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, ClassVar, Self

import docker
import docker.errors


class Lifecycle:
    """Start on enter, stop on exit, sweep the label; subclasses say how."""

    created: ClassVar[list[Lifecycle]] = []  # every one made in this process
    active: ClassVar[list[Lifecycle]] = []  # those started and not yet stopped
    label: str  # "key=value": everything this one creates carries it
    project: str  # a name for reports
    docker: docker.DockerClient

    def __enter__(self) -> Self:
        Lifecycle.created.append(self)
        Lifecycle.active.append(self)
        try:
            self.start()
        except BaseException:
            self.close()  # `up` failing half-way (or Ctrl-C during it) still cleans up
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self in Lifecycle.active:
            Lifecycle.active.remove(self)
        with interrupts_deferred():
            self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def logs(self) -> str:
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        return labelled_leftovers(self.docker, self.label)

    def sweep(self) -> list[str]:
        """Force-remove anything still carrying the label; return what was found."""
        return sweep_labelled(self.docker, self.label)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """A teardown that Ctrl-C (or SIGTERM) cannot cut short: a signal that comes meanwhile is
    held, and raised as KeyboardInterrupt once the block is done, unless an exception is on
    its way out already (the teardown of a test that Ctrl-C interrupted: that one goes on).
    A Ctrl-C that came as a stack was being taken down once left its containers behind. Only
    in the main thread, where Python handles signals; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda got, _frame: held.append(got))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if held and sys.exc_info()[0] is None:
        raise KeyboardInterrupt(f"signal {held[0]}, held until the teardown was done")


def _labelled(engine: docker.DockerClient, label: str) -> list[tuple[str, Any]]:
    """Every container, network and volume carrying ``label`` (``key=value``), containers
    first: they hold the networks and volumes."""
    found = {"label": label}
    containers = engine.containers.list(all=True, filters=found, ignore_removed=True)
    return (
        [("container", c) for c in containers]
        + [("network", n) for n in engine.networks.list(filters=found)]
        + [("volume", v) for v in engine.volumes.list(filters=found)]
    )


def labelled_leftovers(engine: docker.DockerClient, label: str) -> list[str]:
    return [f"{kind} {thing.name}" for kind, thing in _labelled(engine, label)]


def sweep_labelled(engine: docker.DockerClient, label: str) -> list[str]:
    """Force-remove everything carrying ``label``; return what was found. One already gone
    meanwhile is not an error."""
    found = []
    for kind, thing in _labelled(engine, label):
        found.append(f"{kind} {thing.name}")
        with contextlib.suppress(docker.errors.NotFound):
            if kind == "container":
                thing.remove(force=True, v=True)
            else:
                thing.remove(**({} if kind == "network" else {"force": True}))
    return found


# The kernel's ring for tcpdump, in KiB. In immediate mode each slot of the ring holds one
# packet of up to the snapshot length (256 KiB: an interface that offloads segmentation hands
# over packets of up to 64 KiB), so the default 2 MiB holds 8 packets: while a busy machine
# keeps tcpdump off the CPU, the 64 KiB echo's segments overflow it and the kernel drops them.
# 64 MiB holds 256 (the ring is the kernel's memory while tcpdump runs, and freed with it).
CAPTURE_RING_KIB = 64 << 10


def tcpdump_command(interface: str, bpf: str, path: str) -> list[str]:
    """tcpdump writing ``path`` from ``interface``, for a helper container or a node alike:
    numeric, each packet written as it comes (``-U``), ``--immediate-mode`` (without it,
    packets wait in the kernel's ring and those still waiting at the interrupt are lost), and
    a ring of ``CAPTURE_RING_KIB`` (``-B``)."""
    return [
        "tcpdump",
        *("-i", interface, "-n", "-U", "--immediate-mode", "-B", str(CAPTURE_RING_KIB)),
        *("-w", path, bpf),
    ]


def tcpdump_dropped(output: str) -> str | None:
    """What tcpdump's counts in its ``output`` say it lost (printed when it stops, or on
    SIGUSR1), or None: the packets the kernel dropped because tcpdump was too slow to take
    them, which no wait for the capture to fill brings back."""
    counts = re.findall(r"(\d+) packets? dropped by kernel", output)
    if not counts:
        return "tcpdump did not say how many packets it dropped: " + output.strip()[-500:]
    if int(counts[-1]):
        return f"tcpdump dropped {counts[-1]} packets: the capture is not whole"
    return None
