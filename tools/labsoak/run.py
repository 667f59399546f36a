"""``make soak``: a seeded chaos soak. Clients in several containers run operations of every kind
(``labprobe.soak``) while the nemesis (``labsoak.nemesis``) injects overlapping faults; then the
checker (``labsoak.checker``) judges every operation from the history, and the report says what
was ok, what failed clearly, and what was corrupt or lost (violations: exit status 1).

    make soak                          SOAK_SECONDS (120), SOAK_SEED (random, printed)
    make soak TARGET=cluster           the same against the three-host Swarm test bed
    python -m labsoak --help

Writes ``soak/results/latest.json`` (the report: seed, duration, operations by outcome and kind,
the violations with their history entries, each fault kind's availability and recovery),
``latest.png`` (operations per second by outcome, fault spans shaded) and
``latest-history.jsonl.gz`` (the whole history, to check again: ``--check FILE``).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
from labprobe.soak import KINDS
from labstack import ROOT, ComposeStack, StackError

from . import checker
from .cluster import soak_cluster
from .follow import run_under_nemesis
from .nemesis import ComposeNemesis, Nemesis

matplotlib.use("Agg")
import matplotlib.pyplot as plt

WORKERS = 3
GRACE_S = 30  # after SECONDS, how long the workers may take to finish their last operations
COLOURS = {"ok": "#2da44e", "failed": "#bf8700", "corrupt": "#cf222e", "lost": "#111111"}
FAULT_COLOURS = {
    "kill": "#cf222e",
    "sigterm": "#8250df",
    "pause": "#6e7781",
    "cpu": "#bf8700",
    "memory": "#0a7e8c",
    "disconnect": "#1f6feb",
    "shape": "#2da44e",
    "resets": "#e16f24",
    "node-loss": "#cf222e",
    "rolling-update": "#8250df",
    "task-kill": "#6e7781",
}


def soak_compose(
    seconds: float, seed: str, say: Callable[[str], None]
) -> tuple[list[str], Nemesis]:
    # Its own project: two soaks started in the same second (a user's and the suite's) never
    # share one, and the name, printed first, says what Ctrl-C must leave nothing of.
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    project = f"labsoak-{stamp}-{secrets.token_hex(3)}"
    lines: list[str] = []
    say(f"soak: compose project {project}")
    with ComposeStack(project=project) as stack:
        nemesis = ComposeNemesis(seed, seconds, say=say, stack=stack)
        workers = [
            stack.start_container(
                "client",
                ["soak", "server", str(seconds), seed, f"w{i}"],
                entrypoint=["python3", "-m", "labprobe"],
            ).container
            for i in range(1, WORKERS + 1)
        ]
        say(f"soak: {WORKERS} client containers, operations: {', '.join(KINDS)}")
        run_under_nemesis(nemesis, workers, lines, seconds + GRACE_S)
    return lines, nemesis


def chart(
    ops: list[checker.Operation], faults: list[checker.Fault], path: Path, title: str
) -> None:
    """Operations per second by outcome (stacked, by the second they ended in; lost ones at
    their start), with each fault's span shaded."""
    ended = [o for o in ops if o.start]
    if not ended:
        return
    t0 = min(o.start for o in ended)
    last = max((o.end or o.start) for o in ended)
    seconds = int(last - t0) + 1
    counts = {k: [0] * seconds for k in checker.OUTCOMES}
    for op in ended:
        at = int(((op.end or op.start) if op.outcome != "lost" else op.start) - t0)
        counts[op.outcome][min(at, seconds - 1)] += 1
    fig, axis = plt.subplots(figsize=(12, 4.2))
    bottom = [0] * seconds
    for outcome in checker.OUTCOMES:
        axis.bar(
            range(seconds),
            counts[outcome],
            1.0,
            bottom=bottom,
            color=COLOURS[outcome],
            label=f"{outcome} ({sum(counts[outcome])})",
        )
        bottom = [b + c for b, c in zip(bottom, counts[outcome], strict=True)]
    top = max(bottom) or 1
    shown: set[str] = set()
    for fault in faults:
        axis.axvspan(
            fault.start - t0,
            fault.end - t0,
            color=FAULT_COLOURS.get(fault.kind, "#999999"),
            alpha=0.18,
            label=None if fault.kind in shown else fault.kind,
        )
        shown.add(fault.kind)
        axis.text(fault.start - t0, top * 1.02, fault.kind, fontsize=7, rotation=45)
    axis.set_xlim(0, seconds)
    axis.set_ylim(0, top * 1.25)
    axis.set_xlabel("seconds since the first operation")
    axis.set_ylabel("operations per second")
    axis.set_title(title)
    axis.legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def check(
    lines: list[str], faults: list[checker.Fault], **run: Any
) -> tuple[dict[str, Any], list[checker.Operation]]:
    ops = checker.judge(checker.read_history(lines))
    return checker.report(ops, faults, **run), ops


def write(
    out: Path, report: dict[str, Any], ops: list[checker.Operation], lines: list[str]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    with gzip.open(out / "latest-history.jsonl.gz", "wt") as history:
        history.writelines(line + "\n" for line in lines)
    chart(
        ops,
        [checker.Fault(**f) for f in report["faults"]],
        out / "latest.png",
        f"soak {report['started']}: {report['seconds']} s, seed {report['seed']}, "
        f"{report['operations']} operations, {report['violation_count']} violations",
    )


def summary(report: dict[str, Any]) -> str:
    outcomes = report["outcomes"]
    lines = [
        f"soak: {report['operations']} operations in {report['seconds']} s: "
        + ", ".join(f"{outcomes[k]} {k}" for k in checker.OUTCOMES),
        "  by kind: "
        + "; ".join(
            f"{kind} {c['ok']} ok/{c['failed']} failed/{c['corrupt'] + c['lost']} violations"
            for kind, c in report["by_kind"].items()
        ),
    ]
    for kind, figures in report["per_fault"].items():
        availability = figures["availability"]
        lines.append(
            f"  {kind:<10} x{figures['count']:<2} {figures['seconds']:>6.1f} s  availability "
            + ("n/a" if availability is None else f"{availability:.1%}")
            + f"  recovery p50 {figures['recovery_p50_s']} s, p99 {figures['recovery_p99_s']} s"
        )
    for violation in report["violations"][:10]:
        lines.append(
            f"  VIOLATION {violation['outcome']}: {violation['id']} ({violation['kind']})"
            f": {violation['why']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make soak", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("SOAK_SECONDS") or 120),
        help="how long the clients run (SOAK_SECONDS, 120)",
    )
    parser.add_argument(
        "--seed",
        default=os.environ.get("SOAK_SEED") or secrets.token_hex(4),
        help="the schedule's and the clients' seed (SOAK_SEED; random, and printed)",
    )
    parser.add_argument(
        "--target",
        choices=("compose", "cluster"),
        default=os.environ.get("TARGET") or "compose",
        help="the compose stack, or the three-host Swarm test bed (TARGET)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "soak" / "results")
    parser.add_argument(
        "--check",
        type=Path,
        metavar="HISTORY",
        help="run nothing: check a saved history (latest-history.jsonl.gz) again",
    )
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, flush=True)

    if args.check:
        saved = json.loads((args.check.parent / "latest.json").read_text())
        with gzip.open(args.check, "rt") as saved_history:
            lines = saved_history.read().splitlines()
        faults = [checker.Fault(**f) for f in saved["faults"]]
        report, _ = check(lines, faults, **{k: saved[k] for k in RUN_KEYS if k in saved})
        say(summary(report))
        return 1 if report["violation_count"] else 0
    say(
        f"soak: seed {args.seed}, {args.seconds:g} s against {args.target} "
        f"(replay: make soak SOAK_SEED={args.seed} SOAK_SECONDS={args.seconds:g}"
        + (" TARGET=cluster" if args.target == "cluster" else "")
        + ")"
    )
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    clock = time.monotonic()
    try:
        if args.target == "cluster":
            lines, nemesis = soak_cluster(args.seconds, args.seed, say)
        else:
            lines, nemesis = soak_compose(args.seconds, args.seed, say)
    except StackError as exc:
        print(f"make soak: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM from a CI that cancels
        print("make soak: interrupted; every fault undone, everything removed", file=sys.stderr)
        return 130
    run = {
        "started": started,
        "seed": args.seed,
        "seconds": args.seconds,
        "target": args.target,
        "wall_s": round(time.monotonic() - clock, 1),
        "nemesis_failures": nemesis.failures,
        "workers": WORKERS,
    }
    report, ops = check(lines, nemesis.faults, **run)
    write(args.out, report, ops, lines)
    say(summary(report))
    kinds = Counter(f.kind for f in nemesis.faults)
    undos = sum(1 for failure in nemesis.failures if failure.startswith("undo "))
    say(
        f"soak: {len(nemesis.faults)} faults ({', '.join(f'{k} x{n}' for k, n in kinds.items())})"
        f"; {len(nemesis.failures) - undos} could not be applied, {undos} undos found the server"
        f" gone (see nemesis_failures); wrote {args.out}/latest.json, "
        "latest.png, latest-history.jsonl.gz"
    )
    return 1 if report["violation_count"] else 0


RUN_KEYS = ("started", "seed", "seconds", "target", "wall_s", "nemesis_failures", "workers")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
