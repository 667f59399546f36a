"""`make bench`: the project's server beside its peers, measured in one run on one network.

Brings up bench/compose.yaml under its own compose project: the project's server; asyncio echo
servers with streams and with a Protocol; the Protocol one on uvloop (when the tools image has
it); socat as an echo server; iperf3; and the tutorial's steps. Then one load generator
(services/labbench/loadgen.py, in a long-lived container of its own) runs every workload against
every server that speaks it.

Made to be trusted on a small, noisy machine:
- pinned: every server on one core, the load generator on the others (compose ``cpuset``);
- the server's **CPU time per request** (its cgroup's CPU counter over the measured window,
  divided by the requests answered in it), the figure noise moves least, beside req/s;
- every workload 3 times, servers interleaved (A B C A B C A B C), reported as the median with
  the min-max spread, in the table and in the chart.

Writes bench/results/latest.json (every run, and the medians; a timestamped copy), latest.md
(the tables) and latest.png (the chart). The stack is torn down afterwards, however it ends.

    scripts/bench.py [--quick | --smoke] [--duration S] [--repeats N] [--no-pin] [--only W,..]
                     [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import matplotlib
from docker.models.containers import Container

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from lab import registry
from labstack import ROOT, ComposeStack
from labstack.stack import NotYet, wait_for
from matplotlib.axes import Axes

from . import benchpage, command, quiet, scale
from .progress import Progress

SWEEP_CONNS = (16, 256, 1024)  # with 1 and 64: request/response at 1, 16, 64, 256 and 1,024
RUN_OVERHEAD_S = 2.0  # a run's set-up around its measured seconds (the progress estimate)
SERVERS = ("project", "asyncio", "asyncio-protocol", "uvloop", "socat")
PYPI_PEERS = {"uvloop": "uvloop"}  # peers that need a module from services/labbench/peers.txt
STEPS = ("blocking", "threaded", "multiconn")  # the tutorial's servers (LAB_SERVER)
ECHO = registry.default_port("tcp-echo")
TCP_PORT = {
    "project": ECHO,
    **dict.fromkeys(STEPS, ECHO),
    **dict.fromkeys(("asyncio", "asyncio-protocol", "uvloop", "socat"), 7000),
}
UDP_PORT = {"project": registry.default_port("udp-echo"), "asyncio": 7000, "uvloop": 7000}
APP_PORT = 65433
SAMPLE_EVERY_S = 0.25
CONTAINER_TMP = {"/tmp": "size=16m"}  # noqa: S108 (a tmpfs inside the container, not ours)
FIGURES = (
    "req_per_s",
    "mb_per_s",
    "p50_us",
    "p99_us",
    "p999_us",
    "server_cpu_us_per_req",
    "server_cpu_pct",
    "server_rss_mb",
    "loadgen_cpu_pct",
)
SCALE_FIGURES = (  # the scale sweep's (labtools.scale)
    "setup_per_s",
    "rss_per_conn_b",
    "kernel_per_conn_b",
    "rss_base_mb",
    "kernel_mb",
    "server_cpu_us_per_conn",
)


SCALE_SERVERS = ("project", "asyncio", "asyncio-protocol", "uvloop", "multiconn")
# The tutorial's multiconn sets up about 1,000 connections a second (a line printed for each):
# 100,000 would take minutes of the run for the same finding, so its sweep stops at 10,000.
SCALE_MOST = {"multiconn": 10000}


def cases(mode: str, servers: tuple[str, ...], nofile: int = scale.SERVER_NOFILE) -> list[dict]:
    """Every workload, with the servers that speak it (each case is run REPEATS times,
    servers interleaved). ``mode``: smoke (``--smoke``: the code runs, figures meaningless),
    quick (``BENCH_QUICK=1``: fewer points, one run each) or full (what the docs quote)."""
    udp = [s for s in servers if s in UDP_PORT]
    no_socat = tuple(s for s in servers if s != "socat")
    if mode == "smoke":
        return [
            {"workload": "rr", "conns": 4, "size": 1024, "servers": servers},
            {"workload": "bulk", "conns": 1, "size": 65536, "servers": ("project", "iperf3")},
            {"workload": "udp", "conns": 2, "size": 512, "servers": ("project",)},
            {"workload": "idle", "conns": 200, "size": 1024, "servers": ("project",)},
            {"workload": "app", "conns": 4, "size": 1024, "servers": ("project",)},
            *hold_cases(scale.reachable(scale.SMOKE_SWEEP, nofile)[0], ("project",)),
            *steps_cases(quick=True),
        ]
    if mode == "quick":
        return [
            {"workload": "rr", "conns": 1, "size": 1024, "servers": servers},
            {"workload": "rr", "conns": 64, "size": 1024, "servers": servers},
            {"workload": "rr", "conns": 1024, "size": 1024, "servers": no_socat},
            {"workload": "bulk", "conns": 1, "size": 65536, "servers": ("project", "iperf3")},
            {"workload": "udp", "conns": 2, "size": 512, "servers": ("project",)},
            {"workload": "app", "conns": 64, "size": 1024, "servers": ("project",)},
            *hold_cases(scale.reachable(scale.QUICK_SWEEP, nofile)[0], ("project",)),
        ]
    return [
        {"workload": "rr", "conns": 1, "size": 1024, "servers": servers},
        {"workload": "rr", "conns": 64, "size": 1024, "servers": servers},
        # How each server's cost grows with concurrency (socat forks a process per
        # connection: its pids limit keeps it at 64 and below).
        *(
            {"workload": "rr", "conns": n, "size": 1024, "servers": no_socat}
            for n in SWEEP_CONNS
            if no_socat
        ),
        {"workload": "rr", "conns": 16, "size": 65536, "servers": servers},
        {"workload": "bulk", "conns": 1, "size": 65536, "servers": (*servers, "iperf3")},
        {"workload": "udp", "conns": 2, "size": 512, "servers": tuple(udp)},
        {"workload": "app", "conns": 64, "size": 1024, "servers": ("project",)},
        *hold_cases(scale.reachable(scale.SWEEP, nofile)[0], ("project",)),
        *hold_cases(
            scale.reachable(scale.SWEEP, nofile)[0],
            tuple(s for s in SCALE_SERVERS if s in (*servers, *STEPS) and s != "project"),
            repeats=1,
        ),
        *steps_cases(quick=False),
    ]


def hold_cases(
    counts: tuple[int, ...], servers: tuple[str, ...], repeats: int | None = None
) -> list[dict]:
    """The scale sweep: idle connections held from several hosts (labtools.scale), each
    server up to its SCALE_MOST. The peers' points are run once in the full run (``repeats``):
    the targets are the project's, and three runs of every peer would take the run past 15
    minutes where the engine allows 100,000."""
    return [
        {"workload": "hold", "conns": n, "size": None, "servers": within}
        | ({"repeats": repeats} if repeats else {})
        for n in counts
        if (within := tuple(s for s in servers if n <= SCALE_MOST.get(s, n)))
    ]


def steps_cases(quick: bool) -> list[dict]:
    """From the tutorial to the lab: idle clients held, and rr 1 KiB at 16 connections. The
    blocking server accepts nobody while it serves one client: idle clients beyond its listen
    backlog (128) would wait out their connect timeouts, so it gets 100."""
    servers = (*STEPS, "project")
    idle = [
        {
            "workload": "idle",
            "conns": 20 if quick else n,
            "size": 1024,
            "servers": (s,),
            "table": "steps",
        }
        for s, n in (("blocking", 100), ("threaded", 1000), ("multiconn", 1000), ("project", 1000))
    ]
    return [
        *idle,
        {
            "workload": "rr",
            "conns": 4 if quick else 16,
            "size": 1024,
            "servers": servers,
            "table": "steps",
        },
    ]


def pinning(engine: docker.DockerClient, pin: bool) -> dict[str, str] | None:
    """Which cores the servers and the load generator get: the servers core 0, the load
    generator the rest (BENCH_SERVER_CPUS and BENCH_LOADGEN_CPUS override). None: unpinned
    (--no-pin, or an engine with one core)."""
    cores = engine.info().get("NCPU") or 1
    if not pin or cores < 2:
        return None
    return {
        "server": os.environ.get("BENCH_SERVER_CPUS", "0"),
        "loadgen": os.environ.get("BENCH_LOADGEN_CPUS", "1" if cores == 2 else f"1-{cores - 1}"),
    }


def core_count(cpuset: str | None) -> int:
    """How many cores a cpuset string ("1", "1-3", "0,2") names."""
    return len(quiet.cores_of(cpuset)) if cpuset else os.cpu_count() or 2


def pinned_cores(cpus: dict[str, str] | None) -> list[int]:
    """The cores the servers and the load generator are pinned to (none when unpinned)."""
    return quiet.cores_of(f"{cpus['server']},{cpus['loadgen']}") if cpus else []


def available_peers(image: str) -> dict[str, str | None]:
    """For each PyPI peer: None if the tools image has its module, else why not."""
    why = {}
    for service, module in PYPI_PEERS.items():
        proc = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "--entrypoint",
                "python3",
                image,
                "-c",
                f"import {module}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        why[service] = (
            None
            if proc.returncode == 0
            else (
                f"{module} is not in the tools image (scripts/fetch-wheels.sh could not download "
                f"it?): {proc.stderr.strip().splitlines()[-1:]}"
            )
        )
    return why


class Sampler(threading.Thread):
    """The peak RSS of one container (the server under test, named by ``watch`` before each
    run), from the SDK's stats (the engine refreshes them once a second)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.container: Container | None = None
        self.peak = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def watch(self, container: Container) -> None:
        with self.lock:
            self.container, self.peak = container, 0

    def peak_mb(self) -> float | None:
        with self.lock:
            return round(self.peak / 2**20, 1) if self.peak else None

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_EVERY_S):
            with self.lock:
                container = self.container
            if container is None:
                continue
            try:
                memory = container.stats(stream=False, one_shot=True)["memory_stats"]
            except Exception:  # noqa: S112 (a sample missed during teardown is just missed)
                continue
            rss = memory.get("stats", {}).get("anon", memory.get("stats", {}).get("rss", 0))
            with self.lock:
                if container is self.container:
                    self.peak = max(self.peak, rss)


CPU_COMMAND = [
    "sh",
    "-c",
    "cat /sys/fs/cgroup/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpuacct/cpuacct.usage",
]
# Where a local engine keeps a container's CPU counter (cgroup v2 and v1; cgroupfs and systemd
# drivers): read from here without an exec when the benchmark runs on the engine's host.
HOST_CPU_FILES = (
    "/sys/fs/cgroup/docker/{id}/cpu.stat",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat",
    "/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage",
    "/sys/fs/cgroup/cpuacct/system.slice/docker-{id}.scope/cpuacct.usage",
)


def cpu_seconds(container: Container) -> float:
    """The CPU time the container's cgroup has used so far: the kernel's own counter, from the
    host's cgroup tree when it is there, else read in the container. Every process of the
    container counts, and the kernel's work done in their context (system calls)."""
    for pattern in HOST_CPU_FILES:
        try:
            return quiet.cgroup_seconds(Path(pattern.format(id=container.id)).read_text())
        except OSError:
            continue
    code, out = container.exec_run(CPU_COMMAND)
    if code != 0:
        raise RuntimeError(f"cannot read {container.name}'s CPU counter: {out.decode()[-300:]}")
    return quiet.cgroup_seconds(out.decode())


class LoadGenerator:
    """One long-lived tools container, pinned to the load generator's cores; each run is an
    exec in it (a fresh container per run would cost a second each)."""

    def __init__(self, stack: ComposeStack, cpuset: str | None, nofile: int = 20000) -> None:
        options = {"cpuset_cpus": cpuset} if cpuset else {}
        nofile = min(nofile, 20000)
        self.stack, self.cores = stack, core_count(cpuset)
        self.container = stack.start_container(
            "tools",
            ["python3", "-c", "import time; time.sleep(3600)"],
            pids_limit=256,
            mem_limit="2g",
            tmpfs=CONTAINER_TMP,
            ulimits=[docker.types.Ulimit(name="nofile", soft=nofile, hard=nofile)],
            # Its connections' TIME_WAITs outlive a run (60 s): three runs of 10,000 idle
            # clients would exhaust the default 28,000 ephemeral ports of this one namespace.
            sysctls={"net.ipv4.ip_local_port_range": "1024 65535", "net.ipv4.tcp_tw_reuse": "1"},
            **options,
        ).container

    def run(self, command: list[str], whole: bool = False) -> dict:
        """Run ``command`` to its end; its JSON result: the last line of its output (the
        load generator's), or all of it with ``whole`` (iperf3's)."""
        code, (out, err) = self.container.exec_run(command, demux=True)
        text = (out or b"").decode().strip()
        if code != 0 or not text:
            raise RuntimeError(
                f"{command[:4]} failed ({code}): {text[-1000:]} "
                f"{(err or b'').decode(errors='replace')[-2000:]}"
            )
        return json.loads(text if whole else text.splitlines()[-1])


def loadgen_command(run: dict, duration: float, processes: int) -> list[str]:
    server = run["server"]
    port = (
        APP_PORT
        if run["workload"] == "app"
        else (UDP_PORT if run["workload"] == "udp" else TCP_PORT)[server]
    )
    command = [
        "python3",
        "-m",
        "labbench.loadgen",
        run["workload"],
        "--host",
        server,
        "--port",
        str(port),
        "--conns",
        str(run["conns"]),
        "--size",
        str(run["size"] or 0),
        "--duration",
        str(duration),
        "--processes",
        str(processes),
    ]
    if run["workload"] == "idle":
        command += ["--idle", str(run["conns"])]
    return command


def run_iperf3(loadgen: LoadGenerator, duration: float) -> dict:
    seconds = max(1, round(duration))
    report = loadgen.run(
        ["iperf3", "--client", "iperf3", "--time", str(seconds), "--json"], whole=True
    )
    if "error" in report:
        raise RuntimeError(f"iperf3: {report['error']}")
    started = report["start"]["timestamp"]["timesecs"]
    return {
        "window": [started, started + seconds],
        "req_per_s": None,
        "mb_per_s": round(report["end"]["sum_received"]["bits_per_second"] / 8e6, 2),
        "errors": 0,
        "loadgen_cpu_pct": round(report["end"]["cpu_utilization_percent"]["host_total"], 1),
    }


def schedule(plan: list[dict], repeats: int) -> list[dict]:
    """Each case ``repeats`` times (or its own ``repeats``, when fewer) with its servers
    interleaved: A B C A B C A B C."""
    return [
        {
            **{k: v for k, v in case.items() if k not in ("servers", "repeats")},
            "server": server,
            "repeat": i + 1,
        }
        for case in plan
        for i in range(min(repeats, case.get("repeats", repeats)))
        for server in case["servers"]
    ]


def wait_ready(stack: ComposeStack, loadgen: LoadGenerator, services: tuple[str, ...]) -> None:
    """Each server accepts connections (a TCP connect from the load generator's container):
    the benchmark's services have no health checks."""
    probe = (
        "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()"
    )

    def accepts(service: str, port: int) -> None:
        code, _ = loadgen.container.exec_run(["python3", "-c", probe, service, str(port)])
        if code != 0:
            raise NotYet(f"{service}:{port} does not accept yet")

    for service in services:
        port = 5201 if service == "iperf3" else TCP_PORT[service]
        wait_for(
            f"{service} to accept on port {port}",
            lambda s=service, p=port: accepts(s, p),
            within_s=60,
            every_s=0.2,
        )


def measure(
    stack: ComposeStack,
    runs: list[dict],
    duration: float,
    cpus: dict[str, str] | None,
    services: tuple[str, ...],
    nofile: int = scale.SERVER_NOFILE,
) -> tuple[list[dict], dict[str, Any]]:
    loadgen = LoadGenerator(stack, cpus["loadgen"] if cpus else None, nofile)
    wait_ready(stack, loadgen, services)
    most = max((run["conns"] for run in runs if run["workload"] == "hold"), default=0)
    holders = (
        scale.Holders(stack, cpus["loadgen"] if cpus else None, most, nofile) if most else None
    )
    sampler = Sampler()
    sampler.start()
    results: list[dict] = []
    # Besides the rows: other processes' CPU on the pinned cores, the limits the run set.
    meta: dict[str, Any] = {"limits": scale.limits(stack.container("project"), holders)}
    pinned = pinned_cores(cpus)
    began, busy_before, ours_before = time.monotonic(), 0.0, 0.0
    restarted_cpu_s = 0.0  # what servers restarted by the scale sweep had used (counted as ours)
    if pinned:
        busy_before, ours_before = _busy_and_ours(stack, loadgen, pinned)
    try:
        bar = Progress("bench", len(runs), expected_step_s=duration + RUN_OVERHEAD_S)
        for run in runs:
            bar.step(
                f"{run['workload']:<5} {run['server']:<16} "
                f"conns={run['conns']:<6} size={run['size']} (repeat {run['repeat']})"
            )
            server = stack.container(run["server"])
            if run["workload"] == "hold":
                assert holders is not None
                # Restarting resets the server's CPU counter: what it had counts as ours.
                restarted_cpu_s += cpu_seconds(server)
                results.append(measure_hold(stack, loadgen, holders, server, run, duration))
                continue
            sampler.watch(server)
            cpu_before = cpu_seconds(server)
            raw = (
                run_iperf3(loadgen, duration)
                if run["server"] == "iperf3"
                else loadgen.run(loadgen_command(run, duration, loadgen.cores))
            )
            cpu_s = cpu_seconds(server) - cpu_before  # the run's connects included: a few ms
            elapsed = raw["window"][1] - raw["window"][0]
            requests = raw.get("requests") if run["workload"] != "bulk" else None
            row = {
                "workload": run["workload"],
                "server": run["server"],
                "conns": run["conns"],
                "size_bytes": run["size"],
                "repeat": run["repeat"],
                **{
                    k: raw.get(k)
                    for k in (
                        "req_per_s",
                        "mb_per_s",
                        "p50_us",
                        "p99_us",
                        "p999_us",
                        "errors",
                        "loadgen_cpu_pct",
                    )
                },
                "server_rss_mb": sampler.peak_mb(),
                "server_cpu_pct": round(100 * cpu_s / elapsed, 1),
                "server_cpu_us_per_req": (round(1e6 * cpu_s / requests, 1) if requests else None),
            }
            for extra in (
                "loss_pct",
                "sent",
                "held",
                "turned_away",
                "connect_failed",
                "requests",
                "engine",
            ):
                if extra in raw:
                    row[extra] = raw[extra]
            if "table" in run:
                row["table"] = run["table"]
            results.append(row)
        if pinned:
            busy_after, ours_after = _busy_and_ours(stack, loadgen, pinned)
            ours_after += restarted_cpu_s
            others = (busy_after - busy_before) - (ours_after - ours_before)
            meta["others_s"] = round(max(0.0, others), 2)
            meta["measured_s"] = round(time.monotonic() - began, 1)
    finally:
        sampler.stopped.set()
        sampler.join(5)
    return results, meta


def measure_hold(
    stack: ComposeStack,
    loadgen: LoadGenerator,
    holders: scale.Holders,
    server: Container,
    run: dict,
    duration: float,
) -> dict:
    """One point of the scale sweep (labtools.scale): the server restarted, ``conns`` idle
    connections opened from the holders, fresh requests timed from the load generator while
    they are held, the server's memory read, the holders' counts."""
    server.restart(timeout=0)  # SIGKILL: a fresh process is all it is for (and some ignore SIGTERM)
    wait_ready(stack, loadgen, (run["server"],))
    base = scale.memory_of(server)
    cpu_before = cpu_seconds(server)
    held = holders.hold(run["server"], TCP_PORT[run["server"]], run["conns"])
    cpu_open = cpu_seconds(server) - cpu_before
    try:
        fresh = loadgen.run(
            loadgen_command({**run, "workload": "fresh", "size": 1024}, duration, 1)
        )
        now = scale.memory_of(server)
    finally:
        counts = held.release()
    opened = sum(o["opened"] for o in held.opened)
    mb = lambda n: round(n / 2**20, 1) if n is not None else None  # noqa: E731
    return {
        "workload": "hold",
        "server": run["server"],
        "conns": run["conns"],
        "size_bytes": None,
        "repeat": run["repeat"],
        **{k: fresh.get(k) for k in ("req_per_s", "p50_us", "p99_us", "p999_us", "errors")},
        "mb_per_s": None,
        "loadgen_cpu_pct": fresh.get("loadgen_cpu_pct"),
        "requests": fresh.get("requests"),
        **counts,
        "setup_per_s": scale.setup_rate(held.opened),
        "server_cpu_us_per_conn": round(1e6 * cpu_open / opened, 1) if opened else None,
        "server_cpu_pct": None,
        "server_cpu_us_per_req": None,
        "server_rss_mb": mb(now["anon"]),
        "rss_base_mb": mb(base["anon"]),
        "rss_per_conn_b": scale.per_connection(now["anon"], base["anon"], counts["held"]),
        "kernel_mb": mb(now["kernel"]),
        "kernel_per_conn_b": scale.per_connection(now["kernel"], base["kernel"], counts["held"]),
    }


def _busy_and_ours(
    stack: ComposeStack, loadgen: LoadGenerator, cores: list[int]
) -> tuple[float, float]:
    """Busy time of the pinned cores so far (the host's /proc/stat, read in the load
    generator's container), and the CPU time of the benchmark's own containers."""
    code, out = loadgen.container.exec_run(["cat", "/proc/stat"])
    if code != 0:
        raise RuntimeError(f"cannot read /proc/stat: {out.decode()[-300:]}")
    ours = stack.docker.containers.list(filters={"label": stack.label}, ignore_removed=True)
    return quiet.busy_seconds(out.decode(), cores), sum(cpu_seconds(c) for c in ours)


def calibrate_cores(cpus: dict[str, str] | None, image: str) -> dict[str, float]:
    """The calibration loop's time on each pinned core (none when unpinned), each in a
    container of its own pinned there, with no network."""
    if not cpus:
        return {}

    def run_on_core(core: int, source: str) -> str:
        proc = subprocess.run(
            [
                *("docker", "run", "--rm", "--network", "none", "--cpuset-cpus", str(core)),
                *("--entrypoint", "python3", image, "-c", source),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return proc.stdout.strip()

    return quiet.calibrate(run_on_core, pinned_cores(cpus))


def summarise(results: list[dict]) -> list[dict]:
    """One row per (workload, server, conns, size, table): each figure's median, and its
    min-max over the repeats in ``spread``."""
    groups: dict[tuple, list[dict]] = {}
    for row in results:
        key = tuple(row.get(k) for k in ("workload", "server", "conns", "size_bytes", "table"))
        groups.setdefault(key, []).append(row)
    summary = []
    for rows in groups.values():
        out = {k: rows[0][k] for k in ("workload", "server", "conns", "size_bytes")}
        if "table" in rows[0]:
            out["table"] = rows[0]["table"]
        out["repeats"] = len(rows)
        out["errors"] = sum(r.get("errors") or 0 for r in rows)
        out["spread"] = {}
        counts = ("loss_pct", "held", "turned_away", "connect_failed")
        for figure in (*FIGURES, *SCALE_FIGURES, *counts):
            values = [r[figure] for r in rows if r.get(figure) is not None]
            if not values:
                out.setdefault(figure, None)
                continue
            median = statistics.median(values)
            out[figure] = round(median, 2) if isinstance(median, float) else median
            out["spread"][figure] = [min(values), max(values)]
        summary.append(out)
    return summary


def find(results: list[dict], **match: object) -> dict | None:
    return next((r for r in results if all(r.get(k) == v for k, v in match.items())), None)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def holds(value: float | None, bound: float, way: str) -> bool:
    """Whether a measured ``value`` meets ``bound`` (``way``: ">=", "<=" or "<")."""
    if value is None:
        return False
    return {">=": value >= bound, "<=": value <= bound, "<": value < bound}[way]


def targets(summary: list[dict]) -> list[dict]:
    """The issue's targets, judged on the medians of this run (a report, not a test)."""
    main = [r for r in summary if r.get("table") is None]

    def rr64(server: str, figure: str = "req_per_s") -> float | None:
        row = find(main, workload="rr", server=server, conns=64, size_bytes=1024)
        return row[figure] if row else None

    def check(name: str, value: float | None, bound: float, way: str = ">=") -> dict:
        return {"target": name, "value": value, "met": holds(value, bound, way)}

    bulk = find(main, workload="bulk", server="project")
    ceiling = find(main, workload="bulk", server="iperf3")
    at_1024 = find(main, workload="rr", server="project", conns=1024, size_bytes=1024)
    out = [
        check(
            "rr 1 KiB: project's CPU per request at 1,024 connections / at 64 <= 1.1",
            ratio(
                at_1024["server_cpu_us_per_req"] if at_1024 else None,
                rr64("project", "server_cpu_us_per_req"),
            ),
            1.1,
            "<=",
        ),
        check(
            "rr 1 KiB x64: project / asyncio streams >= 1.5",
            ratio(rr64("project"), rr64("asyncio")),
            1.5,
        ),
        check(
            "rr 1 KiB x64: project / asyncio Protocol >= 1.2",
            ratio(rr64("project"), rr64("asyncio-protocol")),
            1.2,
        ),
        check("rr 1 KiB x64: project / socat >= 2", ratio(rr64("project"), rr64("socat")), 2.0),
        check(
            "rr 1 KiB x64: uvloop / project <= 1.25 (within 1.25x of uvloop)",
            ratio(rr64("uvloop"), rr64("project")),
            1.25,
            "<=",
        ),
        check(
            "rr 1 KiB x64: server CPU per request, project / asyncio streams <= 0.6",
            ratio(
                rr64("project", "server_cpu_us_per_req"), rr64("asyncio", "server_cpu_us_per_req")
            ),
            0.6,
            "<=",
        ),
        check(
            "bulk echo: project / iperf3 ceiling >= 0.60",
            ratio(bulk["mb_per_s"] if bulk else None, ceiling["mb_per_s"] if ceiling else None),
            0.6,
        ),
    ]
    if udp := find(main, workload="udp", server="project"):
        out.append(
            check("UDP >= 50,000 datagrams/s echoed (loss reported)", udp["req_per_s"], 50000)
        )
    return out + scale_targets(main)


def scale_targets(main: list[dict]) -> list[dict]:
    """The scale sweep's targets, at the most connections the project's server held in it (and
    at 100,000 where the engine allows it: otherwise the target says what was measured)."""
    rows = sorted(
        (r for r in main if r["workload"] == "hold" and r["server"] == "project"),
        key=lambda r: r["conns"],
    )
    if not rows:
        return []
    top, at_10k = rows[-1], find(rows, conns=10000)
    n, goal = top["conns"], scale.TARGET_CONNS
    short = n < goal
    note = f"measured at {n:,}, the most this engine allows: see the limits" if short else None
    per_conn = top.get("rss_per_conn_b")

    def check(name: str, value: float | None, bound: float, way: str) -> dict:
        """Met only when measured at ``goal``: short of it, the value is shown, not met."""
        return {
            "target": name,
            "value": value,
            "met": holds(value, bound, way) and not short,
            "note": note,
            "scale": True,
        }

    return [
        check(f"idle connections held across hosts >= {goal:,}", top.get("held"), goal, ">="),
        check(
            f"project's RSS at {goal:,} <= 128 MB"
            + (" (projected: fresh RSS + bytes per connection x 100,000)" if short else ""),
            round((top["rss_base_mb"] or 0) + per_conn * goal / 2**20, 1)
            if short and per_conn
            else top.get("server_rss_mb"),
            128,
            "<=",
        ),
        check(
            f"RSS per connection at {goal:,} / at 10,000 <= 1.1",
            ratio(per_conn, at_10k.get("rss_per_conn_b") if at_10k else None),
            1.1,
            "<=",
        ),
        check(
            f"fresh request p99 while {goal:,} are held < 5 ms",
            top.get("p99_us") and round(top["p99_us"] / 1000, 2),
            5,
            "<",
        ),
        check(
            f"set-up rate opening {goal:,} >= 10,000 connections/s",
            top.get("setup_per_s"),
            10000,
            ">=",
        ),
    ]


def spread(row: dict, figure: str, scale: float = 1.0) -> str:
    """``median (min-max)`` of one figure, or the median alone when the repeats agree."""
    value = row.get(figure)
    if value is None:
        return ""
    low, high = row["spread"].get(figure, (value, value))

    def fmt(x: float) -> str:
        x = x / scale
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"

    return fmt(value) if low == high else f"{fmt(value)} ({fmt(low)}-{fmt(high)})"


def steps_table(summary: list[dict]) -> list[str]:
    """From the tutorial to the lab: each step's memory holding idle clients, and rr 1 KiB."""
    lines = [
        "| server | idle clients held open | server RSS (MB) | fresh connections meanwhile: "
        "p99 (ms), or failed | rr 1 KiB conns | req/s | p99 (us) | "
        "server CPU per request (us) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for server in (*STEPS, "project"):
        idle = find(summary, workload="idle", server=server, table="steps") or {"spread": {}}
        rr = find(summary, workload="rr", server=server, table="steps") or {"spread": {}}
        away = idle.get("turned_away") or 0
        held = f"{idle.get('held', '')} of {idle.get('conns', '')}" + (
            f" ({away} turned away)" if away else ""
        )
        fresh = (
            spread(idle, "p99_us", 1000)
            if idle.get("p99_us") is not None
            else f"none answered, {idle.get('errors', 0)} failed in {idle.get('repeats', 0)} run(s)"
        )
        lines.append(
            f"| {'lab' if server == 'project' else server} | {held} | "
            f"{spread(idle, 'server_rss_mb')} | {fresh} | {rr.get('conns', '')} | "
            f"{spread(rr, 'req_per_s')} | {spread(rr, 'p99_us')} | "
            f"{spread(rr, 'server_cpu_us_per_req')} |"
        )
    return lines


def scale_table(report: dict) -> list[str]:
    """The scale sweep (labtools.scale): a row per server and count, and the limits it set."""
    rows = [r for r in report["summary"] if r["workload"] == "hold"]
    if not rows:
        return []
    lines = [
        "",
        "Idle connections held from several hosts (each server restarted first; memory per "
        "connection over the fresh server's):",
        "",
        "| server | held | set-up (conn/s) | server CPU per connection (us) | RSS MB (fresh) | "
        "user-space bytes per connection | kernel bytes per connection | fresh request p99 "
        "(ms) | turned away, failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = {s: i for i, s in enumerate((*SERVERS, *STEPS))}
    for row in sorted(rows, key=lambda r: (order.get(r["server"], 99), r["conns"])):
        name = "lab" if row["server"] == "project" else row["server"]
        lines.append(
            f"| {name} | {row.get('held') or 0:,} of {row['conns']:,} | "
            f"{spread(row, 'setup_per_s')} | {spread(row, 'server_cpu_us_per_conn')} | "
            f"{spread(row, 'server_rss_mb')} ({row.get('rss_base_mb')}) | "
            f"{spread(row, 'rss_per_conn_b')} | {spread(row, 'kernel_per_conn_b')} | "
            f"{spread(row, 'p99_us', 1000)} | {row.get('turned_away') or 0}, "
            f"{(row.get('connect_failed') or 0) + (row.get('errors') or 0)} |"
        )
    limits = report.get("limits") or {}
    lines += ["", "Limits set for it, in the benchmark's own containers:", ""]
    lines += [f"- {line}" for line in limits.get("set", [])]
    if limits.get("left_out"):
        lines.append(f"- {limits['left_out']}")
    if limits.get("host"):
        lines.append(
            "- the host's, read and left as they are: "
            + ", ".join(f"{k} {v}" for k, v in limits["host"].items())
        )
    return lines


def markdown(report: dict) -> str:
    cols = [
        ("req/s", "req_per_s"),
        ("MB/s", "mb_per_s"),
        ("p50 us", "p50_us"),
        ("p99 us", "p99_us"),
        ("server CPU us/req", "server_cpu_us_per_req"),
        ("server CPU %", "server_cpu_pct"),
        ("server RSS MB", "server_rss_mb"),
        ("loadgen CPU %", "loadgen_cpu_pct"),
    ]
    lines = [
        "| workload | server | conns | size | " + " | ".join(c[0] for c in cols) + " | errors |",
        "|" + "---|" * (len(cols) + 5),
    ]
    for row in [r for r in report["summary"] if r.get("table") is None and r["workload"] != "hold"]:
        workload = row["workload"]
        if workload == "udp" and row.get("loss_pct") is not None:
            workload = f"udp (loss {row['loss_pct']}%)"
        cells = [workload, row["server"], str(row["conns"]), str(row["size_bytes"] or "")]
        cells += [spread(row, figure) for _, figure in cols] + [str(row["errors"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += scale_table(report)
    if any(r.get("table") == "steps" for r in report["summary"]):
        lines += [
            "",
            "From the tutorial to the lab (LAB_SERVER):",
            "",
            *steps_table(report["summary"]),
        ]
    lines += ["", "| target (medians) | this run | met |", "|---|---|---|"]
    lines += [
        f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'no'}"
        + (f" ({t['note']})" if t.get("note") else "")
        + " |"
        for t in report["targets"]
    ]
    machine, cpus = report["machine"], report["cpus"]
    pinned = (
        f"servers pinned to core {cpus['server']}, load generator to core {cpus['loadgen']}"
        if cpus
        else "unpinned"
    )
    missing = "".join(
        f" {peer}: not measured ({why})." for peer, why in report["unavailable"].items()
    )
    lines += [
        "",
        f"Median of {report['repeats']} interleaved runs (min-max in brackets), "
        f"{report['duration_s']} s each; {pinned}. {machine['cores']} cores, kernel "
        f"{machine['kernel']}, docker {machine['docker']}, run at {report['started']}."
        f"{missing}",
        "",
        quiet.describe(report.get("quiet")),
    ]
    return "\n".join(lines) + "\n"


def _bars(axis: Axes, groups: list[str], series: dict[str, list[dict | None]], figure: str) -> None:
    """Grouped bars of ``figure``'s median per series, with min-max error bars."""
    width = 0.8 / max(1, len(series))
    for i, (name, rows) in enumerate(series.items()):
        medians = [(r or {}).get(figure) or 0 for r in rows]
        low = [
            m - ((r or {}).get("spread", {}).get(figure, (m, m))[0])
            for m, r in zip(medians, rows, strict=True)
        ]
        high = [
            ((r or {}).get("spread", {}).get(figure, (m, m))[1]) - m
            for m, r in zip(medians, rows, strict=True)
        ]
        axis.bar(
            [x + i * width for x in range(len(groups))],
            medians,
            width,
            label=name,
            yerr=[low, high],
            capsize=3,
        )
    axis.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(groups))], groups)


def _curves(
    axis: Axes, conns: list[int], series: dict[str, list[dict | None]], figure: str
) -> None:
    """One line per server: ``figure``'s median against connections (log-scaled), with the
    min-max as error bars; a server not measured at some size has no point there."""
    for name, rows in series.items():
        points = [(c, r) for c, r in zip(conns, rows, strict=True) if r and r.get(figure)]
        if not points:
            continue
        xs = [c for c, _ in points]
        medians = [r[figure] for _, r in points]
        spreads = [
            r.get("spread", {}).get(figure, (m, m))
            for (_, r), m in zip(points, medians, strict=True)
        ]
        low = [m - lo for m, (lo, _) in zip(medians, spreads, strict=True)]
        high = [hi - m for m, (_, hi) in zip(medians, spreads, strict=True)]
        axis.errorbar(xs, medians, yerr=[low, high], marker="o", capsize=3, label=name)
    if len(conns) > 1:
        axis.set_xscale("log", base=2)
    axis.set_xticks(conns, [str(c) for c in conns])
    axis.set_xlabel("connections")


def _legend(axis: Axes) -> None:
    """A legend where the panel has lines (a run with --only leaves some panels empty)."""
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8)


def chart(report: dict, path: Path) -> None:
    summary = [r for r in report["summary"] if r.get("table") is None]
    servers = [s for s in SERVERS if find(summary, server=s)]
    held = [r for r in summary if r["workload"] == "hold"]
    fig, axes = plt.subplots(2 if held else 1, 3, figsize=(15, 8.8 if held else 4.4), squeeze=False)
    left, middle, right = axes[0]
    conns = sorted(
        {r["conns"] for r in summary if r["workload"] == "rr" and r["size_bytes"] == 1024}
    )
    series = {
        s: [find(summary, workload="rr", server=s, conns=c, size_bytes=1024) for c in conns]
        for s in servers
    }
    _curves(left, conns, series, "req_per_s")
    left.set_title("request/response, 1 KiB: requests/s by connections")
    _legend(left)
    _curves(middle, conns, series, "server_cpu_us_per_req")
    middle.set_title("server CPU per request (us) by connections: lower is better")
    bulk = [s for s in (*SERVERS, "iperf3") if find(summary, workload="bulk", server=s)]
    _bars(
        right,
        ["bulk echo"],
        {s: [find(summary, workload="bulk", server=s)] for s in bulk},
        "mb_per_s",
    )
    right.set_title("bulk echo, one connection: MB/s (iperf3 = ceiling)")
    _legend(right)
    if held:
        counts = sorted({r["conns"] for r in held})
        by_server = {
            s: [find(held, server=s, conns=c) for c in counts]
            for s in (*SERVERS, *STEPS)
            if find(held, server=s)
        }
        for axis, figure, title in zip(
            axes[1],
            ("rss_per_conn_b", "p99_us", "setup_per_s"),
            (
                "idle connections held: user-space bytes per connection",
                "fresh request p99 (us) while they are held",
                "set-up rate (connections/s) while opening",
            ),
            strict=True,
        ):
            _curves(axis, counts, by_server, figure)
            axis.set_xlabel("connections held")
            axis.set_title(title)
        axes[1][1].set_yscale("log")
        _legend(axes[1][0])
    fig.suptitle(
        f"sockets lab benchmark, {report['started']}: median of {report['repeats']}"
        " runs, bars show min-max"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="fewer points, one run each (about 3 minutes; BENCH_QUICK=1 too): the docs quote "
        "the full run",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="the code runs end to end: tiny durations and counts (figures meaningless)",
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per run (2, or 0.5 with --smoke)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs of each workload per server, interleaved (3, or 1 with --quick or --smoke)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the servers and the load generator to cores",
    )
    parser.add_argument(
        "--only",
        metavar="WORKLOADS",
        help="only these workloads, comma-separated (rr,bulk,udp,idle,app,steps)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--report",
        type=Path,
        action="append",
        metavar="FILE",
        help="run nothing: write the page of this saved results file (FILE.html); twice, the "
        "two runs side by side (compare-A-B.html beside the first)",
    )
    args = parser.parse_args()
    if args.report:
        return write_page(args.report)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    duration = args.duration or (0.5 if args.smoke else 2.0)
    repeats = args.repeats or (3 if mode == "full" else 1)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    engine = docker.from_env()
    image_tag = os.environ.get("LAB_IMAGE_TAG", "latest")
    unavailable = {
        peer: why for peer, why in available_peers(f"sockets-lab/tools:{image_tag}").items() if why
    }
    for peer, why in unavailable.items():
        print(f"bench: {peer} left out: {why}", flush=True)
    servers = tuple(s for s in SERVERS if s not in unavailable)
    cpus = pinning(engine, args.pin)
    print(
        "bench: "
        + (
            f"servers on core {cpus['server']}, load generator on core {cpus['loadgen']}"
            if cpus
            else "not pinned"
        ),
        flush=True,
    )
    tools_image = f"sockets-lab/tools:{image_tag}"
    nofile = scale.engine_nofile(tools_image)
    sweep = {"smoke": scale.SMOKE_SWEEP, "quick": scale.QUICK_SWEEP, "full": scale.SWEEP}[mode]
    left_out = scale.reachable(sweep, nofile)[1]
    if left_out:
        print(f"bench: {left_out}", flush=True)
    plan = cases(mode, servers, nofile)
    if args.only:
        wanted = set(args.only.split(","))
        plan = [c for c in plan if ("steps" if c.get("table") else c["workload"]) in wanted]
    runs = schedule(plan, repeats)
    calibration_before = calibrate_cores(cpus, tools_image)
    began = time.monotonic()
    env = {"BENCH_NOFILE": str(min(nofile, scale.SERVER_NOFILE))}
    if cpus:
        env["BENCH_SERVER_CPUS"] = cpus["server"]
    with ComposeStack(
        compose_file=ROOT / "bench" / "compose.yaml",
        project=f"labbench-{uuid.uuid4().hex[:10]}",
        env=env,
        services=(*servers, *STEPS, "iperf3"),
    ) as stack:
        results, meta = measure(stack, runs, duration, cpus, (*servers, *STEPS, "iperf3"), nofile)
        version = stack.docker.version()["Version"]
    quiet_check = (
        quiet.judge(
            calibration_before,
            calibrate_cores(cpus, tools_image),
            meta.get("others_s"),
            meta.get("measured_s", 0.0),
        )
        if cpus
        else None
    )
    summary = summarise(results)
    report = {
        "started": started,
        "duration_s": duration,
        "repeats": repeats,
        "mode": mode,
        "quick": mode != "full",
        "cpus": cpus,
        "unavailable": unavailable,
        "machine": {
            "cores": engine.info().get("NCPU"),
            "kernel": platform.release(),
            "docker": version,
        },
        "limits": {
            "set": meta["limits"],
            "engine_nofile": nofile,
            "left_out": left_out,
            "host": scale.host_limits(),
        },
        "results": results,
        "summary": summary,
        "wall_s": round(time.monotonic() - began, 1),
        "quiet": quiet_check,
        "targets": targets(summary),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    latest = args.out / "latest.json"
    latest.write_text(json.dumps(report, indent=2) + "\n")
    shutil.copy(latest, args.out / f"{started.replace(':', '')}.json")
    table = markdown(report)
    (args.out / "latest.md").write_text(table)
    chart(report, args.out / "latest.png")
    (args.out / "latest.html").write_text(benchpage.page([report], [latest.name]))
    print(table)
    print(
        f"bench: {len(results)} measurements in {report['wall_s']} s; wrote "
        f"{latest}, latest.md, latest.png, latest.html"
    )
    if quiet_check:
        print(f"bench: {quiet.describe(quiet_check)}")
    if mode == "full" and not args.only and args.out == ROOT / "bench" / "results":
        write_doc(report, args.out / "latest.png")
        print(f"bench: wrote {DOC.relative_to(ROOT)} and {DOC_CHART.relative_to(ROOT)}")
    return 0


DOC = ROOT / "docs" / "benchmark.md"
DOC_CHART = ROOT / "docs" / "benchmark.png"
DOC_SCALE = ROOT / "docs" / "scale.md"
DOC_BEGIN = "<!-- bench: begin"
DOC_END = "<!-- bench: end -->"


def doc_region(report: dict) -> str:
    """What docs/benchmark.md shows of a full run: when and where it ran, the chart, the tables."""
    machine = report["machine"]
    return (
        f"`make bench` started {report['started']} and took {report['wall_s']:.0f} s for "
        f"{len(report['results'])} measurements, on {machine['cores']} cores (kernel "
        f"{machine['kernel']}, docker {machine['docker']}).\n\n"
        f"{quiet.describe(report.get('quiet'))}\n\n"
        "![the benchmark's chart](benchmark.png)\n\n" + markdown(report).rstrip() + "\n"
    )


def scale_region(report: dict) -> str:
    """What docs/scale.md shows of a full run: the scale sweep's table, limits and targets."""
    rows = [
        f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'no'}"
        + (f" ({t['note']})" if t.get("note") else "")
        + " |"
        for t in report["targets"]
        if t.get("scale")
    ]
    return (
        f"`make bench` started {report['started']} ({report['machine']['cores']} cores, kernel "
        f"{report['machine']['kernel']}, docker {report['machine']['docker']}); the curves are "
        "the second row of [the benchmark's chart](benchmark.png).\n\n"
        f"{quiet.describe(report.get('quiet'))}\n"
        + "\n".join(scale_table(report))
        + "\n\n| target (medians) | this run | met |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )


def _replace_region(doc: Path, region: str) -> None:
    text = doc.read_text()
    begin = text.index(DOC_BEGIN)
    begin = text.index("-->", begin) + len("-->")
    end = text.index(DOC_END, begin)
    doc.write_text(text[:begin] + "\n" + region + text[end:])


def write_doc(
    report: dict, chart_png: Path | None = None, doc: Path = DOC, scale_doc: Path | None = None
) -> None:
    """Put a full run's figures between the markers of docs/benchmark.md and of docs/scale.md
    (the rest of each page, the method and the notes, is prose kept by hand), and its chart
    beside them."""
    _replace_region(doc, doc_region(report))
    scale_doc = scale_doc or doc.with_name(DOC_SCALE.name)
    if scale_doc.exists() and any(t.get("scale") for t in report["targets"]):
        _replace_region(scale_doc, scale_region(report))
    if chart_png is not None:
        shutil.copy(chart_png, doc.with_name(DOC_CHART.name))


def write_page(files: list[Path]) -> int:
    """``--report``: the page of one saved run, or of two side by side."""
    if len(files) > 2:
        print("bench: --report takes one results file, or two to compare", file=sys.stderr)
        return 2
    try:
        text = benchpage.render_files(files)
    except (OSError, ValueError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    out = (
        files[0].with_suffix(".html")
        if len(files) == 1
        else files[0].with_name(f"compare-{files[0].stem}-{files[1].stem}.html")
    )
    out.write_text(text)
    print(f"bench: wrote {out}")
    return 0


def run() -> int:
    """The command line (scripts/bench.py, ``python -m labtools.bench``): SIGTERM tears down
    as Ctrl-C does (``command.run``), and either ends in one line and status 130."""
    return command.run(main, "bench: interrupted; what it started has been removed")


if __name__ == "__main__":
    sys.exit(run())
