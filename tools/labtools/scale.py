"""The benchmark's scale sweep: idle connections held from several hosts, and what they cost.

For each server and each count (1,000 to 100,000), on a freshly restarted server:

1. ``HOLDERS`` load-generator containers (distinct addresses: no one address runs out of
   ports) start together and open their share of the connections, each with a window of
   connects in flight (services/labbench/loadgen.py ``hold``); the **set-up rate** is all the
   connections over the time from the first connect to the last handshake, and the server's
   **CPU per connection** its cgroup's CPU over that time;
2. while they are held, the benchmark's own load generator (another host again) times fresh
   connect + 1 KiB round trips: their **p99**;
3. the server's **user-space memory** (its cgroup's anonymous memory: Python's objects, not the
   kernel's socket buffers) is read, and its **kernel memory** where the cgroup tells it;
   per connection: over the fresh server's own, divided by the connections held;
4. the holders count the connections still open (the server closed none) and reset them all
   (no TIME_WAIT, no conntrack entry left for two minutes).

The limits such a run needs are set in the benchmark's own containers (bench/compose.yaml, and
the holders' options below), never on the host; ``limits()`` names them for the report.
"""

from __future__ import annotations

import json
import math
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container
from labstack import ComposeStack

HOLDERS = 4  # load-generator containers that hold the connections (25,000 each at 100,000)
SWEEP = (1000, 10000, 50000, 100000)
TARGET_CONNS = 100000  # the issue's: held from several hosts, under 128 MB of RSS
QUICK_SWEEP = (1000, 10000, 100000)
SMOKE_SWEEP = (200, 1000)
HOLD_MAX_S = 120.0  # a holder resets its connections after this long whatever happens
OPEN_WITHIN_S = 120.0  # every holder has opened its share (or given up) within this
SERVER_NOFILE = 110000  # the servers' descriptors, where the engine allows as many
HOLDER_SHARE = 25000  # connections one holder opens at most (one address: 64,511 ports)
SPARE_FDS = 1000  # descriptors a server or holder keeps besides the connections it holds
# Each holder's network namespace: the whole ephemeral port range for its share.
HOLDER_SYSCTLS = {"net.ipv4.ip_local_port_range": "1024 65535"}
CONTAINER_TMP = {"/tmp": "size=1m"}  # noqa: S108 (a tmpfs inside the container: the release file)
RELEASE = "/tmp/release"  # noqa: S108 (in the holder's own tmpfs)

# Where a local engine keeps a container's memory counters (cgroup v2, then v1).
HOST_MEMORY_DIRS = (
    "/sys/fs/cgroup/docker/{id}",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope",
    "/sys/fs/cgroup/memory/docker/{id}",
    "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope",
)


def engine_nofile(image: str) -> int:
    """The most descriptors a container on this engine can be given: a container's default
    hard limit, which it inherits from the engine (dockerd's and containerd's own
    RLIMIT_NOFILE; raising a container past it needs CAP_SYS_RESOURCE the engine may lack)."""
    proc = subprocess.run(
        [
            *("docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image),
            *("-c", "ulimit -Hn"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = proc.stdout.strip()
    return SERVER_NOFILE if text == "unlimited" else int(text)


def reachable(counts: tuple[int, ...], nofile: int) -> tuple[tuple[int, ...], str | None]:
    """The sweep's counts that ``nofile`` descriptors allow; when some are out of reach, the
    largest that is (in thousands) joins them, and a sentence says why."""
    cap = min(SERVER_NOFILE, nofile) - SPARE_FDS
    kept = tuple(n for n in counts if n <= cap)
    if len(kept) == len(counts):
        return kept, None
    largest = cap // 1000 * 1000
    if largest > (kept[-1] if kept else 0):
        kept = (*kept, largest)
    left_out = ", ".join(f"{n:,}" for n in counts if n > cap)
    return kept, (
        f"{left_out} connections left out: this engine gives a container at most {nofile:,} "
        f"descriptors (its own RLIMIT_NOFILE; raise LimitNOFILE in the docker and containerd "
        f"services to hold more); the sweep goes to {kept[-1]:,} instead"
    )


def parse_memory(stat: str, kmem: str | None = None) -> dict[str, int | None]:
    """User-space (anonymous) and kernel memory from a cgroup's memory.stat: v2's ``anon`` and
    ``kernel`` (or slab + sock + kernel_stack before 5.18), v1's ``rss`` and its
    memory.kmem.usage_in_bytes when given."""
    fields = {}
    for line in stat.splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            fields[name] = int(value)
    if "anon" in fields:  # cgroup v2
        kernel = fields.get("kernel")
        if kernel is None and "slab" in fields:
            kernel = sum(fields.get(k, 0) for k in ("slab", "sock", "kernel_stack"))
        return {"anon": fields["anon"], "kernel": kernel}
    kernel_v1 = int(kmem) if kmem and kmem.strip().isdigit() else None
    return {"anon": fields.get("rss", 0), "kernel": kernel_v1}


def memory_of(container: Container) -> dict[str, int | None]:
    """The container's memory now: from the host's cgroup tree when the engine is local, else
    from the engine's stats (user space only)."""
    for pattern in HOST_MEMORY_DIRS:
        where = Path(pattern.format(id=container.id))
        try:
            stat = (where / "memory.stat").read_text()
        except OSError:
            continue
        try:
            kmem: str | None = (where / "memory.kmem.usage_in_bytes").read_text()
        except OSError:
            kmem = None
        return parse_memory(stat, kmem)
    stats = container.stats(stream=False, one_shot=True)["memory_stats"].get("stats", {})
    return {"anon": stats.get("anon", stats.get("rss", 0)), "kernel": None}


def setup_rate(opened: list[dict]) -> float | None:
    """Connections per second while opening, over all holders: every connection opened, over
    the time from the first holder's first connect to the last holder's last handshake."""
    total = sum(o["opened"] for o in opened)
    span = max(o["last"] for o in opened) - min(o["first"] for o in opened)
    return round(total / span) if total and span > 0 else None


def per_connection(now: int | None, base: int | None, held: int) -> float | None:
    """Bytes per connection held: what the server holds now over what it held fresh."""
    if now is None or base is None or not held:
        return None
    return round(max(0, now - base) / held, 1)


class Holders:
    """HOLDERS long-lived tools containers on the benchmark's network, pinned with the load
    generator, each with the limits its share of the connections needs."""

    def __init__(self, stack: ComposeStack, cpuset: str | None, most: int, nofile: int) -> None:
        """Enough holders for ``most`` connections (at least HOLDERS), each with ``nofile``
        descriptors at most."""
        options = {"cpuset_cpus": cpuset} if cpuset else {}
        share = min(HOLDER_SHARE, nofile - SPARE_FDS)
        self.nofile = min(nofile, share + SPARE_FDS)
        count = max(HOLDERS, math.ceil(most / share))
        self.containers = [
            stack.start_container(
                "tools",
                ["python3", "-c", "import time; time.sleep(3600)"],
                pids_limit=64,
                mem_limit="1g",
                tmpfs=CONTAINER_TMP,
                ulimits=[docker.types.Ulimit(name="nofile", soft=self.nofile, hard=self.nofile)],
                sysctls=HOLDER_SYSCTLS,
                **options,
            ).container
            for _ in range(count)
        ]

    def hold(self, host: str, port: int, total: int) -> HeldConnections:
        """Every holder opens its share from the same moment; returns once all are open."""
        shares = [total // len(self.containers)] * len(self.containers)
        shares[0] += total - sum(shares)
        return HeldConnections(self.containers, host, port, shares)


class HeldConnections:
    """One hold: each holder's exec streams its two JSON lines to a thread."""

    def __init__(self, containers: list[Container], host: str, port: int, shares: list[int]):
        self.lines: list[queue.Queue[dict | str]] = [queue.Queue() for _ in containers]
        self.containers = containers
        start = time.time() + 1.0  # every exec has started by then
        for container, share, lines in zip(containers, shares, self.lines, strict=True):
            container.exec_run(["rm", "-f", RELEASE])
            command = [
                *("python3", "-m", "labbench.loadgen", "hold", "--host", host),
                *("--port", str(port), "--idle", str(share), "--start", f"{start:.3f}"),
                *("--hold-max", str(HOLD_MAX_S), "--release-file", RELEASE),
            ]
            _, output = container.exec_run(command, stream=True)
            threading.Thread(target=self._read, args=(output, lines), daemon=True).start()
        self.opened = [self._next(lines, OPEN_WITHIN_S) for lines in self.lines]

    @staticmethod
    def _read(output: Any, lines: queue.Queue[dict | str]) -> None:
        buffer = b""
        for chunk in output:
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                if text.startswith("{"):
                    lines.put(json.loads(text))
        lines.put(f"the holder ended without its result: {buffer.decode(errors='replace')[-500:]}")

    @staticmethod
    def _next(lines: queue.Queue[dict | str], within_s: float) -> dict:
        try:
            line = lines.get(timeout=within_s)
        except queue.Empty:
            raise RuntimeError(f"a holder said nothing in {within_s:.0f} s") from None
        if isinstance(line, str):
            raise RuntimeError(line)
        return line

    def release(self) -> dict[str, int]:
        """Each holder counts what is still open and resets it all: the sums."""
        for container in self.containers:
            container.exec_run(["touch", RELEASE])
        finals = [self._next(lines, HOLD_MAX_S) for lines in self.lines]
        return {
            key: sum(f[key] for f in finals) for key in ("held", "turned_away", "connect_failed")
        }


def limits(server: Container, holders: Holders | None) -> list[str]:
    """The limits a run of 100,000 connections needs, as they were in force (for the report):
    the server's, from the engine's view of its container, and the holders'."""
    host = server.attrs["HostConfig"]
    env = dict(e.split("=", 1) for e in server.attrs["Config"]["Env"] if "=" in e)
    nofile = next((u["Soft"] for u in host.get("Ulimits") or [] if u["Name"] == "nofile"), None)
    memory = host.get("Memory") or 0
    somaxconn = (host.get("Sysctls") or {}).get("net.core.somaxconn", "the default")
    settings = ", ".join(
        f"{k}={env[k]}"
        for k in (
            "LAB_MAX_CONNECTIONS",
            "LAB_BACKLOG",
            "LAB_MAX_CONNECTIONS_PER_IP",
            "LAB_FIRST_BYTE_TIMEOUT_S",
        )
        if k in env
    )
    return [
        f"server: nofile {nofile}, memory limit {memory / 2**30:.1f} GiB (the kernel's memory "
        f"for its sockets counts in it), net.core.somaxconn={somaxconn} in its namespace; "
        f"{settings}",
        *(
            [
                f"holders: {len(holders.containers)} containers (one address each), nofile "
                f"{holders.nofile}, net.ipv4.ip_local_port_range="
                f"{HOLDER_SYSCTLS['net.ipv4.ip_local_port_range']} in each namespace; "
                "connections closed by a reset (no TIME_WAIT left behind)"
            ]
            if holders
            else []
        ),
    ]


def host_limits() -> dict[str, str]:
    """The host's limits that bound such a run, read (never written): for the report."""
    out = {}
    for name in (
        "net/netfilter/nf_conntrack_max",
        "fs/nr_open",
        "fs/file-max",
        "net/ipv4/ip_local_port_range",
    ):
        try:
            out[name.replace("/", ".")] = " ".join(Path("/proc/sys", name).read_text().split())
        except OSError:
            out[name.replace("/", ".")] = "unknown"
    return out
