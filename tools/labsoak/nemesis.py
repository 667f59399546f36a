"""The soak's nemesis: faults on a seeded schedule, two tracks at once so that faults overlap.

    process track   kill (SIGKILL from outside: the restart policy brings the server back),
                    sigterm (stop, then start), pause, cpu (a 5% CPU quota), memory (48 MiB
                    held inside the server's container, within its 128 MiB limit)
    network track   disconnect (cut off the network, then back), shape (tbf at 8 Mbit/s and
                    10% of packets dropped by nftables; this kernel has no netem), resets (5% of
                    segments on established connections answered with a TCP reset)

A track never overlaps itself (two process faults on one container would fight); the two tracks
run side by side. Every fault is recorded as it was applied (``Fault``: kind, start, end), a
fault that could not be applied is recorded as such, and ``heal()`` undoes whatever is still in
place at the end, also after an error or Ctrl-C. On the cluster (``ClusterNemesis``): the
server's task killed, a node lost (its dockerd container paused, then resumed) and a rolling
update (``docker service update --force``).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import docker.errors
from labstack import ComposeStack
from labstack.stack import NotYet, StackError, wait_for

from .checker import Fault

PROCESS_FAULTS = ("kill", "sigterm", "pause", "cpu", "memory")
NETWORK_FAULTS = ("disconnect", "shape", "resets")
HOG_BYTES = 48 << 20
CPU_QUOTA = 5_000  # of a 100,000 µs period: 5% of a core
RESET_PCT = 5
GAP_S = (1.0, 4.0)  # quiet time between two faults of a track
SPAN_S = (2.0, 6.0)  # how long a fault lasts
HEAL_WAIT_S = 90.0  # at the end, for a track to finish the fault it is applying (an update)


@dataclass
class Planned:
    at: float  # seconds after the start, if every fault before it took its planned time
    kind: str
    seconds: float
    gap: float  # quiet time before it, after the track's previous fault (or the start)


def schedule(seed: str, seconds: float, tracks: tuple[tuple[str, ...], ...]) -> list[list[Planned]]:
    """Each track's faults: kinds in a seeded order, every kind once before any comes twice (a
    short run still sees different faults), gaps and spans seeded too, all within ``seconds``
    (the first after a quiet start, the last ending before the end)."""
    plans = []
    for number, kinds in enumerate(tracks):
        rng = random.Random(f"{seed}/nemesis/{number}")
        gap = rng.uniform(*GAP_S) + 2.0
        at, plan, order = gap, [], list[str]()
        while True:
            span = rng.uniform(*SPAN_S)
            if at + span > seconds - 3.0:
                break
            if not order:
                order = rng.sample(kinds, len(kinds))
            plan.append(Planned(round(at, 2), order.pop(), round(span, 2), round(gap, 2)))
            gap = rng.uniform(*GAP_S)
            at += span + gap
        plans.append(plan)
    return plans


@dataclass
class Nemesis:
    """Runs the schedule against a target (``apply`` and ``undo`` per kind), records faults."""

    seed: str
    seconds: float
    say: Callable[[str], None] = print
    faults: list[Fault] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # faults that could not be applied
    tracks: tuple[tuple[str, ...], ...] = (PROCESS_FAULTS, NETWORK_FAULTS)

    def __post_init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.active: dict[str, Any] = {}  # kind -> what undo needs

    def run(self, started: float) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._track, args=(plan, started), daemon=True)
            for plan in schedule(self.seed, self.seconds, self.tracks)
        ]
        for thread in threads:
            thread.start()
        self.threads = threads
        return threads

    def _track(self, plan: list[Planned], started: float) -> None:
        """The track's faults one after another, each after its quiet gap (a fault that took
        longer than planned, a rolling update say, delays the rest; none starts too late to
        end before the soak does)."""
        for planned in plan:
            if self.stopping.wait(planned.gap):
                return
            try:
                self.ready(started + self.seconds - time.monotonic())
            except Exception as exc:  # never came back from the fault before: record, go on
                self.failures.append(f"{planned.kind} at {planned.at}s: {exc}"[:300])
                continue
            if time.monotonic() + planned.seconds > started + self.seconds - 3.0:
                return
            begin = time.time()
            try:
                state = self.apply(planned.kind)
            except Exception as exc:  # the target was mid-restart, say: record, go on
                self.failures.append(f"{planned.kind} at {planned.at}s: {exc}"[:300])
                continue
            with self.lock:
                self.active[planned.kind] = state
            self.say(f"nemesis: {planned.kind} for {planned.seconds:.1f}s")
            self.stopping.wait(planned.seconds)
            end_state = self._undo(planned.kind)
            self.faults.append(
                Fault(planned.kind, round(begin, 4), round(time.time(), 4), end_state)
            )

    def _undo(self, kind: str) -> str:
        with self.lock:
            state = self.active.pop(kind, None)
        try:
            return self.undo(kind, state) or ""
        except Exception as exc:
            self.failures.append(f"undo {kind}: {exc}"[:300])
            return f"undo failed: {exc}"[:200]

    def heal(self) -> None:
        """Undo whatever is still in place. The tracks stop first, and are waited for: one in
        the middle of applying a fault (Ctrl-C came then) finishes it and undoes it itself."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(HEAL_WAIT_S)
        for kind in list(self.active):
            self._undo(kind)
        self.ensure_healthy()

    # -- what a target implements ---------------------------------------------------------
    def ready(self, within_s: float) -> None:
        """Wait (at most ``within_s``) until the target can take the next fault. The compose
        stack's faults overlap on purpose: it takes them as they come."""

    def apply(self, kind: str) -> Any:
        raise NotImplementedError

    def undo(self, kind: str, state: Any) -> str | None:
        raise NotImplementedError

    def ensure_healthy(self) -> None:
        raise NotImplementedError


@dataclass
class ComposeNemesis(Nemesis):
    stack: ComposeStack | None = None

    @property
    def target(self) -> ComposeStack:
        assert self.stack is not None
        return self.stack

    def server(self) -> Any:
        return self.target.container("server")

    def apply(self, kind: str) -> Any:
        stack, server = self.target, self.server()
        if kind == "kill":
            stack.crash("server")  # the restart policy brings it back
            return None
        if kind == "sigterm":
            server.stop(timeout=10)
            return None
        if kind == "pause":
            server.pause()
            return None
        if kind == "cpu":
            server.reload()
            before = server.attrs["HostConfig"].get("CpuQuota") or -1
            server.update(cpu_period=100_000, cpu_quota=CPU_QUOTA)
            return before
        if kind == "memory":
            hog = (
                f"import time; b = bytearray({HOG_BYTES}); b[::4096] = b'x' * len(b[::4096]); "
                "time.sleep(30)"
            )
            result = server.exec_run(["python3", "-c", hog], detach=True)
            return result
        if kind == "disconnect":
            stack.disconnect(server)
            return None
        if kind == "shape":
            return stack.shape("server", delay_ms=50, loss_pct=10)
        if kind == "resets":
            return stack.net_admin(server, ["labfault", "resets", str(RESET_PCT)], "resets")
        raise ValueError(kind)

    def undo(self, kind: str, state: Any) -> str | None:
        stack, server = self.target, self.server()
        if kind == "kill":
            return self._running_again(server)
        if kind == "sigterm":
            server.start()
            return self._running_again(server)
        if kind == "pause":
            server.reload()
            if server.attrs["State"].get("Paused"):
                server.unpause()
            return None
        if kind == "cpu":
            server.update(cpu_quota=-1 if state in (None, 0, -1) else int(state))
            return None
        if kind == "memory":
            # the hog ends by itself; if it is still there, it ends now
            with contextlib.suppress(docker.errors.APIError):
                server.exec_run(["python3", "-c", _KILL_HOG])
            return None
        if kind == "disconnect":
            server.reload()
            if stack.network_name not in server.attrs["NetworkSettings"]["Networks"]:
                stack.reconnect(server, "server")
            return None
        if kind == "shape":
            stack.shape("server", 0, 0)
            return None
        if kind == "resets":
            stack.net_admin(server, ["labfault", "resets", "0"], "resets off")
            return None
        raise ValueError(kind)

    @staticmethod
    def _running_again(server: Any) -> str:
        def running() -> str:
            server.reload()
            if server.status != "running":
                raise NotYet(server.status)
            return "running again"

        return str(wait_for("the server to run again", running, 30, every_s=0.1))

    def ensure_healthy(self) -> None:
        server = self.server()
        server.reload()
        if server.attrs["State"].get("Paused"):
            server.unpause()
        if self.target.network_name not in server.attrs["NetworkSettings"]["Networks"]:
            self.target.reconnect(server, "server")
        if server.status != "running":
            server.start()
        with contextlib.suppress(StackError):
            self.target.wait_healthy("server")
        # An undo that failed mid-run (the server was stopped or restarting, so no container
        # could join its network namespace) left nothing behind: the rules lived in the
        # namespace that the restart replaced. Cleared again here all the same (idempotent).
        self.target.shape("server", 0, 0)
        self.target.net_admin(server, ["labfault", "resets", "0"], "resets off")


# Ends the memory hog, if it is still there: every python3 process but the server (PID 1).
_KILL_HOG = (
    "import os, signal\n"
    "for pid in os.listdir('/proc'):\n"
    "    if pid.isdigit() and int(pid) not in (1, os.getpid()):\n"
    "        try:\n"
    "            cmd = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
    "            if b'bytearray' in cmd: os.kill(int(pid), signal.SIGKILL)\n"
    "        except OSError: pass\n"
)
