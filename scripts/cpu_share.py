#!/usr/bin/env python3
"""Run a command (``make test``) and say where the machine's CPU went while it ran.

The machine's busy time (``/proc/stat``) is split into: the Docker engine's containers, by image
(a cluster node's engine and its own containers are in the node's cgroup, or beside the
engine's containers when the node's engine makes its cgroups there); the engine's daemons
(dockerd, containerd); the command's own processes (pytest, compose, the browser: what it
waited for); and the rest (the kernel's network work, container start-up outside any
container: shims, runc, the storage driver). It also prints how busy the machine was in each
30 s, which shows how well the command's parts fill the cores.

Linux only. It reads /proc and the containers' cgroups (v1 or v2) and asks the engine for its
containers twice a second; it starts nothing of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import docker
from labtools import quiet

CGROUP = Path("/sys/fs/cgroup")
TICK = os.sysconf("SC_CLK_TCK")
WINDOW_S = 30
EVERY_S = 0.5  # a container's usage is read this often: what it spends after the last read
#               before it ends is counted with the containers not placed by image


def busy_seconds() -> float:
    """Seconds of CPU the machine has spent busy since boot, every core. Unlike the benchmark's
    ``quiet.busy_seconds`` this counts interrupt and softirq time: here the kernel's network
    work is part of what a run costs."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK  # all but idle and iowait


def cgroup_usage(path: Path) -> float | None:
    """CPU seconds used by the cgroup at ``path`` and below it (v1 cpuacct or v2 cpu.stat)."""
    for counter in (path / "cpuacct.usage", path / "cpu.stat"):
        try:
            return quiet.cgroup_seconds(counter.read_text())
        except (OSError, ValueError, IndexError):
            continue
    return None


def cgroup_of(pid: int) -> Path | None:
    """Where the process's CPU is counted: its v1 cpuacct cgroup, or its v2 cgroup."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
                if (CGROUP / mount).is_dir():
                    return CGROUP / mount / path.lstrip("/")
    for line in lines:
        if line.startswith("0::"):
            return CGROUP / line[3:].lstrip("/")
    return None


def daemon_seconds() -> dict[str, float]:
    """CPU seconds so far of the engine's daemons in this process's PID namespace (a cluster
    node's dockerd is counted in the node's container)."""
    found: defaultdict[str, float] = defaultdict(float)
    ours = os.readlink("/proc/self/ns/pid")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = (proc / "comm").read_text().strip()
            if name not in ("dockerd", "containerd") or os.readlink(proc / "ns/pid") != ours:
                continue
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            found[name] += (int(stat[11]) + int(stat[12])) / TICK
        except (OSError, ValueError, IndexError):
            continue
    return dict(found)


class Watcher(threading.Thread):
    """Every EVERY_S: the engine's containers (each one's cgroup found once, its usage kept),
    and the machine's busy time for the timeline."""

    def __init__(self, engine: docker.DockerClient) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.stop = threading.Event()
        self.first: dict[str, tuple[str, Path, float]] = {}  # id: image, cgroup, usage at start
        self.last: dict[str, float] = {}
        # each container cgroup's parent: its usage when first seen, and when last read
        self.parent_first: dict[Path, float] = {}
        self.parent_last: dict[Path, float] = {}
        self.timeline: list[tuple[float, float]] = []
        self.seen_before = {c["Id"] for c in engine.api.containers()}

    def run(self) -> None:
        while not self.stop.is_set():
            self.timeline.append((time.monotonic(), busy_seconds()))
            self.sample()
            self.stop.wait(EVERY_S)
        self.sample()  # the last word of those still there

    def sample(self) -> None:
        try:
            listed = self.engine.api.containers()
        except docker.errors.APIError:
            return
        for entry in listed:
            cid = entry["Id"]
            if cid not in self.first:
                self.found(cid, entry.get("Image", "?"))
            if cid in self.first:
                usage = cgroup_usage(self.first[cid][1])
                if usage is not None:
                    self.last[cid] = usage
        for parent in self.parent_first:  # read while it is there: a node's goes with the node
            if (usage := cgroup_usage(parent)) is not None:
                self.parent_last[parent] = usage

    def found(self, cid: str, image: str) -> None:
        try:
            pid = self.engine.api.inspect_container(cid)["State"]["Pid"]
        except docker.errors.APIError:
            return  # gone already
        where = cgroup_of(pid) if pid else None
        if where is None or cid not in where.name:
            return  # ended meanwhile (its PID may be another process's now): not its cgroup
        usage = cgroup_usage(where)
        if usage is None:
            return
        # A container seen at the start counts from then; one started later, from zero.
        self.first[cid] = (image, where, usage if cid in self.seen_before else 0.0)
        if where.parent not in self.parent_first:
            self.parent_first[where.parent] = cgroup_usage(where.parent) or 0.0


@dataclass
class Share:
    command: str
    exit: int
    wall_s: float
    cores: int
    busy_s: float  # the machine's busy CPU-s while the command ran
    containers_s: dict[str, float]  # by image
    started: dict[str, int]  # containers by image
    unplaced_s: float  # in the containers' parent cgroups, not placed by image
    daemons_s: dict[str, float]
    command_s: float  # the command and what it waited for
    busy_per_window: list[int]

    @property
    def rest_s(self) -> float:
        known = sum(self.containers_s.values()) + self.unplaced_s
        return max(0.0, self.busy_s - known - sum(self.daemons_s.values()) - self.command_s)

    def table(self) -> str:
        def row(name: str, seconds: float) -> str:
            return f"| {name} | {seconds:.0f} | {100 * seconds / max(self.busy_s, 1):.0f}% |"

        lines = [
            f"`{self.command}`: exit {self.exit}, {self.wall_s:.0f} s on {self.cores} cores; "
            f"the machine was busy {self.busy_s:.0f} CPU-s, "
            f"{100 * self.busy_s / (self.wall_s * self.cores):.0f}% of what it had.",
            "",
            "| where | CPU-s | share |",
            "|---|---:|---:|",
        ]
        for image, seconds in sorted(self.containers_s.items(), key=lambda kv: -kv[1]):
            lines.append(row(f"containers of `{image}` ({self.started[image]})", seconds))
        if self.unplaced_s:
            lines.append(row("containers not placed by image (¹)", self.unplaced_s))
        lines += [row(name, seconds) for name, seconds in self.daemons_s.items()]
        lines.append(row("the command's own processes", self.command_s))
        lines.append(row("the rest (kernel, shims, runc, storage driver)", self.rest_s))
        windows = " ".join(str(p) for p in self.busy_per_window)
        lines += ["", f"Busy, % of every core, each {WINDOW_S} s: {windows}"]
        if self.unplaced_s:
            lines += [
                "",
                f"(¹) Another engine's (a cluster node's, where it makes its cgroups beside the"
                f" engine's), or a container's last {EVERY_S:g} s, spent after it was last read.",
            ]
        return "\n".join(lines)


def tally(watcher: Watcher) -> tuple[dict[str, float], dict[str, int], float]:
    """CPU-s by image, containers by image, and what the containers' parent cgroups spent
    beyond the containers placed in them."""
    by_image: defaultdict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    placed: defaultdict[Path, float] = defaultdict(float)
    for cid, (image, where, start) in watcher.first.items():
        spent = watcher.last.get(cid, start) - start
        by_image[image] += spent
        count[image] += 1
        placed[where.parent] += spent
    unplaced = sum(
        max(0.0, watcher.parent_last.get(parent, first) - first - placed[parent])
        for parent, first in watcher.parent_first.items()
    )
    return dict(by_image), dict(count), unplaced


def measure(command: list[str]) -> Share:
    engine = docker.from_env()
    watcher = Watcher(engine)
    busy0 = busy_seconds()
    daemons0 = daemon_seconds()
    started = time.monotonic()
    watcher.start()
    child = subprocess.Popen(command)  # the user's own command
    try:
        status = child.wait()
    except KeyboardInterrupt:
        child.terminate()
        status = child.wait()
    watcher.stop.set()
    watcher.join()
    wall = time.monotonic() - started
    busy1 = busy_seconds()
    daemons1 = daemon_seconds()
    children = os.times()
    by_image, count, unplaced = tally(watcher)
    cores = os.cpu_count() or 1
    return Share(
        command=" ".join(command),
        exit=status,
        wall_s=wall,
        cores=cores,
        busy_s=busy1 - busy0,
        containers_s=by_image,
        started=count,
        unplaced_s=unplaced,
        daemons_s={k: daemons1.get(k, 0) - v for k, v in daemons0.items()},
        command_s=children.children_user + children.children_system,
        busy_per_window=busy_windows(watcher.timeline, cores),
    )


def busy_windows(timeline: list[tuple[float, float]], cores: int) -> list[int]:
    """How busy the machine was (percent of every core) in each WINDOW_S."""
    if not timeline:
        return []
    out, (start_t, start_busy) = [], timeline[0]
    for t, busy in timeline[1:]:
        if t - start_t >= WINDOW_S:
            out.append(round(100 * (busy - start_busy) / ((t - start_t) * cores)))
            start_t, start_busy = t, busy
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/cpu_share.py",
        description="Run a command (make test) and say where the machine's CPU went while it"
        " ran: the engine's containers by image, its daemons, the command's own processes and"
        " the rest, with how busy the machine was each 30 s. Reads /proc and the containers'"
        " cgroups; starts nothing of its own.",
        epilog="example: .venv/bin/python scripts/cpu_share.py -- make test",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here, as JSON")
    parser.add_argument("command", nargs="+", help="the command to run (after --)")
    args = parser.parse_args(argv)
    try:
        share = measure(args.command)
    except docker.errors.DockerException as exc:
        print(f"cpu_share: no Docker engine answers: {exc}", file=sys.stderr)
        return 2
    print(share.table())
    if args.json:
        args.json.write_text(json.dumps({**asdict(share), "rest_s": share.rest_s}, indent=1))
    return share.exit


if __name__ == "__main__":
    sys.exit(main())
