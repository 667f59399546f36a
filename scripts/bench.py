#!/usr/bin/env python3
"""`make bench`: the project's server beside its peers, measured in one run on one network.

Brings up bench/compose.yaml under its own compose project: the project's server, an
asyncio-streams echo server, socat as an echo server, and iperf3, each in its own container.
Then the same load generator (services/bench/loadgen.py, several processes, in a container of its
own) runs every workload against every server that speaks it. Absolute figures on a shared
machine are noise, so the report puts ratios against peers measured in the same run beside them.

Writes bench/results/latest.json (and a timestamped copy), latest.md (the table) and
latest.png (the chart). The stack is torn down afterwards, however the run ends.

    scripts/bench.py [--quick] [--duration S] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path

import docker.types
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "services")]
from lab import defaults  # noqa: E402
from labstack import ComposeStack  # noqa: E402

SERVERS = ("project", "asyncio", "socat")
TCP_PORT = {"project": defaults.ECHO_PORT, "asyncio": 7000, "socat": 7000}
UDP_PORT = {"project": defaults.UDP_PORT, "asyncio": 7000}
APP_PORT = 65433
SAMPLE_EVERY_S = 0.25
CONTAINER_TMP = {"/tmp": "size=16m"}  # noqa: S108 (a tmpfs inside the container, not ours)


def plan(quick: bool, duration: float) -> list[dict]:
    """Every workload against every server that speaks it."""
    if quick:
        return ([{"workload": "rr", "server": s, "conns": 4, "size": 1024} for s in SERVERS]
                + [{"workload": "bulk", "server": "project", "conns": 1, "size": 65536},
                   {"workload": "bulk", "server": "iperf3", "conns": 1, "size": None},
                   {"workload": "udp", "server": "project", "conns": 2, "size": 512},
                   {"workload": "idle", "server": "project", "conns": 200, "size": 1024},
                   {"workload": "app", "server": "project", "conns": 4, "size": 1024}])
    runs = [{"workload": "rr", "server": s, "conns": c, "size": 1024}
            for c in (1, 16, 64) for s in SERVERS]
    runs += [{"workload": "rr", "server": s, "conns": 16, "size": 65536} for s in SERVERS]
    runs += [{"workload": "bulk", "server": s, "conns": 1, "size": 65536} for s in SERVERS]
    runs += [{"workload": "bulk", "server": "iperf3", "conns": 1, "size": None}]
    runs += [{"workload": "udp", "server": s, "conns": 2, "size": 512} for s in UDP_PORT]
    runs += [{"workload": "idle", "server": "project", "conns": 10000, "size": 1024},
             {"workload": "app", "server": "project", "conns": 64, "size": 1024}]
    return runs


class Sampler(threading.Thread):
    """Reads each container's CPU counter and RSS from the SDK's stats, a few times a second."""

    def __init__(self, containers: dict) -> None:
        super().__init__(daemon=True)
        self.containers = containers
        self.samples: dict[str, list[tuple[float, int, int]]] = {n: [] for n in containers}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_EVERY_S):
            for name, container in self.containers.items():
                try:
                    stats = container.stats(stream=False, one_shot=True)
                except Exception:  # noqa: S112 (a sample missed during teardown is just missed)
                    continue
                memory = stats.get("memory_stats", {}).get("stats", {})
                rss = memory.get("anon", memory.get("rss", 0))
                self.samples[name].append((time.time(), stats["cpu_stats"]["cpu_usage"][
                    "total_usage"], rss))

    def window(self, name: str, start: float, end: float) -> tuple[float | None, float | None]:
        """CPU % of one core and the highest RSS (MB) over [start, end]."""
        samples = self.samples[name]
        before = [s for s in samples if s[0] <= start][-1:]  # the samples bracketing it
        after = [s for s in samples if s[0] >= end][:1]
        inside = before + [s for s in samples if start < s[0] < end] + after
        if len(inside) < 2:
            return None, None
        (t0, c0, _), (t1, c1, _) = inside[0], inside[-1]
        cpu = 100 * (c1 - c0) / 1e9 / (t1 - t0) if t1 > t0 else None
        return (round(cpu, 1) if cpu is not None else None,
                round(max(s[2] for s in inside) / 2**20, 1))


def run_loadgen(stack: ComposeStack, run: dict, duration: float, processes: int) -> dict:
    server = run["server"]
    port = APP_PORT if run["workload"] == "app" else (
        UDP_PORT if run["workload"] == "udp" else TCP_PORT)[server]
    command = ["python3", "-m", "bench.loadgen", run["workload"], "--host", server, "--port",
               str(port), "--conns", str(run["conns"]), "--size", str(run["size"] or 0),
               "--duration", str(duration), "--processes", str(processes)]
    if run["workload"] == "idle":
        command += ["--idle", str(run["conns"])]
    loadgen = stack.start_container(
        "tools", command, pids_limit=256, mem_limit="2g", tmpfs=CONTAINER_TMP,
        ulimits=[docker.types.Ulimit(name="nofile", soft=20000, hard=20000)])
    result = loadgen.wait(duration + 180)
    if result.exit_code != 0:
        raise RuntimeError(f"load generator failed for {run}: {result}")
    return result.data


def run_iperf3(stack: ComposeStack, duration: float) -> dict:
    client = stack.start_container("tools", ["iperf3", "--client", "iperf3", "--time",
                                             str(max(1, round(duration))), "--json"],
                                   tmpfs=CONTAINER_TMP)
    result = client.wait(duration + 60)
    report = json.loads(result.stdout)
    if "error" in report:
        raise RuntimeError(f"iperf3: {report['error']}")
    started = report["start"]["timestamp"]["timesecs"]
    return {"window": [started, started + max(1, round(duration))], "req_per_s": None,
            "mb_per_s": round(report["end"]["sum_received"]["bits_per_second"] / 8e6, 2),
            "p50_us": None, "p99_us": None, "p999_us": None,
            "errors": 0, "loadgen_cpu_pct": round(report["end"]["cpu_utilization_percent"][
                "host_total"], 1)}


def measure(stack: ComposeStack, runs: list[dict], duration: float, processes: int) -> list:
    containers = {name: stack.container(name) for name in (*SERVERS, "iperf3")}
    sampler = Sampler(containers)
    sampler.start()
    results = []
    try:
        for run in runs:
            print(f"bench: {run['workload']:<5} {run['server']:<8} conns={run['conns']:<6} "
                  f"size={run['size']}", flush=True)
            raw = (run_iperf3(stack, duration) if run["server"] == "iperf3"
                   else run_loadgen(stack, run, duration, processes))
            time.sleep(2 * SAMPLE_EVERY_S)  # let the sampler see the end of the window
            cpu, rss = sampler.window(run["server"], *raw["window"])
            row = {"workload": run["workload"], "server": run["server"], "conns": run["conns"],
                   "size_bytes": run["size"], "req_per_s": raw.get("req_per_s"),
                   "mb_per_s": raw.get("mb_per_s"), "p50_us": raw.get("p50_us"),
                   "p99_us": raw.get("p99_us"), "p999_us": raw.get("p999_us"),
                   "errors": raw.get("errors"), "server_rss_mb": rss, "server_cpu_pct": cpu,
                   "loadgen_cpu_pct": raw.get("loadgen_cpu_pct")}
            for extra in ("loss_pct", "sent", "held"):
                if extra in raw:
                    row[extra] = raw[extra]
            results.append(row)
    finally:
        sampler.stopped.set()
        sampler.join(5)
    return results


def find(results: list[dict], **match: object) -> dict | None:
    return next((r for r in results if all(r.get(k) == v for k, v in match.items())), None)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def targets(results: list[dict]) -> list[dict]:
    """The issue's targets, judged on this run's figures (a report, not a test)."""
    def rr64(server: str) -> float | None:
        row = find(results, workload="rr", server=server, conns=64, size_bytes=1024)
        return row and row["req_per_s"]

    bulk = find(results, workload="bulk", server="project")
    ceiling = find(results, workload="bulk", server="iperf3")
    idle = find(results, workload="idle", server="project")
    udp = find(results, workload="udp", server="project")
    checks = [
        ("rr 1 KiB at 64 connections: project / asyncio >= 1.5",
         ratio(rr64("project"), rr64("asyncio")), 1.5),
        ("rr 1 KiB at 64 connections: project / socat >= 2",
         ratio(rr64("project"), rr64("socat")), 2.0),
        ("bulk echo: project / iperf3 ceiling >= 0.60",
         ratio(bulk and bulk["mb_per_s"], ceiling and ceiling["mb_per_s"]), 0.6),
    ]
    out = [{"target": name, "value": value, "met": value is not None and value >= bound}
           for name, value, bound in checks]
    if idle:
        out.append({"target": f"{idle['conns']} idle connections: server RSS < 64 MB",
                    "value": idle["server_rss_mb"],
                    "met": idle["server_rss_mb"] is not None and idle["server_rss_mb"] < 64})
        out.append({"target": "fresh connection p99 < 5 ms meanwhile",
                    "value": idle["p99_us"] and round(idle["p99_us"] / 1000, 2),
                    "met": idle["p99_us"] is not None and idle["p99_us"] < 5000})
    if udp:
        out.append({"target": "UDP >= 50,000 datagrams/s echoed (loss reported)",
                    "value": udp["req_per_s"],
                    "met": (udp["req_per_s"] or 0) >= 50000})
    return out


def markdown(report: dict) -> str:
    cols = ["workload", "server", "conns", "size_bytes", "req_per_s", "mb_per_s", "p50_us",
            "p99_us", "p999_us", "errors", "server_cpu_pct", "server_rss_mb", "loadgen_cpu_pct"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in report["results"]:
        cells = ["" if row.get(c) is None else str(row[c]) for c in cols]
        if row["workload"] == "udp" and row.get("loss_pct") is not None:
            cells[0] = f"udp (loss {row['loss_pct']}%)"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| target | this run | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'no'} |"
              for t in report["targets"]]
    machine = report["machine"]
    lines += ["", f"{machine['cores']} cores, kernel {machine['kernel']}, docker "
              f"{machine['docker']}, {report['duration_s']} s per workload, run at "
              f"{report['started']}."]
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> None:
    results = report["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    conns = sorted({r["conns"] for r in results if r["workload"] == "rr"
                    and r["size_bytes"] == 1024})
    width = 0.8 / len(SERVERS)
    for i, server in enumerate(SERVERS):
        values = [(find(results, workload="rr", server=server, conns=c, size_bytes=1024) or {})
                  .get("req_per_s") or 0 for c in conns]
        left.bar([x + i * width for x in range(len(conns))], values, width, label=server)
    left.set_xticks([x + width for x in range(len(conns))], [f"{c} conns" for c in conns])
    left.set_title("request/response, 1 KiB: requests/s")
    left.legend()
    bulk = [(r["server"], r["mb_per_s"] or 0) for r in results if r["workload"] == "bulk"]
    right.bar([b[0] for b in bulk], [b[1] for b in bulk],
              color=["C0", "C1", "C2", "C3"][:len(bulk)])
    right.set_title("bulk echo, one connection: MB/s (iperf3 = ceiling)")
    fig.suptitle(f"sockets lab benchmark, {report['started']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: tiny durations and counts (figures meaningless)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per workload (5, or 0.5 with --quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    duration = args.duration or (0.5 if args.quick else 5.0)
    processes = os.cpu_count() or 2
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    runs = plan(args.quick, duration)
    began = time.monotonic()
    with ComposeStack(compose_file=ROOT / "bench" / "compose.yaml",
                      project=f"labbench-{uuid.uuid4().hex[:10]}",
                      services=(*SERVERS, "iperf3")) as stack:
        results = measure(stack, runs, duration, processes)
        engine = stack.docker.version()["Version"]
    report = {"started": started, "duration_s": duration, "quick": args.quick,
              "machine": {"cores": os.cpu_count(), "kernel": platform.release(),
                          "docker": engine, "loadgen_processes": processes},
              "results": results, "wall_s": round(time.monotonic() - began, 1)}
    report["targets"] = targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    latest = args.out / "latest.json"
    latest.write_text(json.dumps(report, indent=2) + "\n")
    shutil.copy(latest, args.out / f"{started.replace(':', '')}.json")
    table = markdown(report)
    (args.out / "latest.md").write_text(table)
    chart(report, args.out / "latest.png")
    print(table)
    print(f"bench: {len(results)} measurements in {report['wall_s']} s; wrote "
          f"{latest}, latest.md, latest.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
