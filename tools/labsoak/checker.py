"""The soak's checker: every operation of the history judged from its evidence, then each fault's
availability and recovery.

Outcomes (the client's word is not taken for it):

  ok        what came back is what was due (digests equal)
  failed    the client reported a clear error, and nothing it saw was wrong: what came back, if
            anything, is a prefix of what was due
  corrupt   a violation: wrong bytes, a reply meant for another operation (its digest is another
            operation's), a datagram seen twice (a duplicate taken, or offered, as new), or a
            client that said ok to what was not due
  lost      a violation: an operation that started and has no end at all

Per fault kind: availability (the share of operations overlapping a fault of that kind that were
ok) and recovery time (from the end of each fault to the end of the next ok operation of each
kind that started after it), p50 and p99.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("ok", "failed", "corrupt", "lost")
VIOLATIONS = ("corrupt", "lost")


@dataclass
class Operation:
    id: str
    kind: str
    start: float
    end: float | None = None
    said: str = ""  # the client's own outcome
    evidence: dict[str, Any] = field(default_factory=dict)
    outcome: str = "lost"
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "client_said": self.said,
            "outcome": self.outcome,
            "why": self.why,
            **self.evidence,
        }


@dataclass(frozen=True)
class Fault:
    kind: str
    start: float
    end: float
    detail: str = ""


def read_history(lines: Iterable[str]) -> list[Operation]:
    """Operations from history lines (any order, any worker); lines that are not JSON history
    events are ignored (a worker's stderr, a log rotation's gap)."""
    ops: dict[str, Operation] = {}
    ends: dict[str, dict[str, Any]] = {}
    for raw in lines:
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "s" in event:
            ops[event["s"]] = Operation(event["s"], event["kind"], event["t"])
        elif "e" in event:
            ends[event["e"]] = event
    for op_id, event in ends.items():
        op = ops.get(op_id)
        if op is None:  # an end without its start: keep it, its start is unknown
            op = ops[op_id] = Operation(op_id, "?", event["t"])
        op.end = event["t"]
        op.said = event.get("outcome", "")
        op.evidence = {k: v for k, v in event.items() if k not in ("e", "t", "outcome")}
    return sorted(ops.values(), key=lambda o: o.start)


def judge(ops: list[Operation]) -> list[Operation]:
    """Set each operation's outcome from its evidence (in place); returns them."""
    sent_by: dict[str, str] = {}  # digest of what an operation sent (or was due): its id
    for op in ops:
        for key in ("sent", "expect", "head"):
            if op.evidence.get(key):
                sent_by.setdefault(op.evidence[key], op.id)
    seen_datagrams: dict[tuple[str, str], str] = {}  # (socket, digest) -> first op that saw it
    for op in ops:
        if op.end is None:
            op.outcome, op.why = "lost", "it started and never ended"
            continue
        ev = op.evidence
        due = ev.get("sent") if "sent" in ev else ev.get("expect")
        got = ev.get("got")
        if op.kind == "udp":
            for stale in ev.get("stale", []):
                datagram = (ev.get("conn", ""), stale)
                if datagram in seen_datagrams:
                    op.outcome = "corrupt"
                    op.why = f"a datagram came twice (first seen by {seen_datagrams[datagram]})"
                    break
                seen_datagrams[datagram] = op.id
            if got is not None:
                datagram = (ev.get("conn", ""), got)
                if datagram in seen_datagrams and op.outcome != "corrupt":
                    op.outcome = "corrupt"
                    op.why = (
                        f"a datagram taken as new came twice (first {seen_datagrams[datagram]})"
                    )
                seen_datagrams.setdefault(datagram, op.id)
            if op.outcome == "corrupt":
                continue
        if op.kind == "greet":
            local = ev.get("local") or ["", 0]
            line = ev.get("line", "")
            intact = bool(line) and str(local[0]) in line and str(local[1]) in line
            _settle(op, intact, partial_ok=not line, sent_by=sent_by, got=None)
            continue
        if got is None:  # nothing came back: a clear failure, if the client said one
            _settle(op, False, partial_ok=True, sent_by=sent_by, got=None)
            continue
        intact = got == due and ev.get("got_len", 0) == ev.get("sent_len", ev.get("got_len", 0))
        prefix = ev.get("sent_prefix")
        partial_ok = (
            prefix is not None and prefix == got and ev.get("got_len", 0) < ev.get("sent_len", 0)
        )
        _settle(op, intact, partial_ok, sent_by, got)
    return ops


def _settle(
    op: Operation, intact: bool, partial_ok: bool, sent_by: dict[str, str], got: str | None
) -> None:
    if intact:
        op.outcome = "ok"
        return
    others = (sent_by.get(got or ""), sent_by.get(op.evidence.get("got_head", "")))
    other = next((o for o in others if o and o != op.id), None)
    if other:
        op.outcome, op.why = "corrupt", f"the reply was meant for {other}"
    elif op.said == "ok":
        op.outcome, op.why = "corrupt", "the client said ok to what was not due"
    elif partial_ok and op.evidence.get("error"):
        op.outcome, op.why = "failed", op.evidence["error"]
    elif not op.evidence.get("error"):
        op.outcome, op.why = "corrupt", "it failed without saying why"
    else:
        op.outcome, op.why = "corrupt", f"wrong bytes came back ({op.evidence['error']})"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def faults_summary(ops: list[Operation], faults: list[Fault]) -> dict[str, Any]:
    """Per fault kind: how many, availability while active, recovery p50/p99 (s)."""
    by_kind: dict[str, list[Fault]] = defaultdict(list)
    for fault in faults:
        by_kind[fault.kind].append(fault)
    ended = [o for o in ops if o.end is not None]
    kinds = sorted({o.kind for o in ops})
    out: dict[str, Any] = {}
    for kind, spans in sorted(by_kind.items()):
        during = [
            o for o in ended if any(o.start <= f.end and (o.end or 0) >= f.start for f in spans)
        ]
        ok = sum(o.outcome == "ok" for o in during)
        recoveries: list[float] = []
        for fault in spans:
            for op_kind in kinds:
                after = next(
                    (
                        o
                        for o in ended
                        if o.kind == op_kind and o.start >= fault.end and o.outcome == "ok"
                    ),
                    None,
                )
                if after is not None and after.end is not None:
                    recoveries.append(after.end - fault.end)
        out[kind] = {
            "count": len(spans),
            "seconds": round(sum(f.end - f.start for f in spans), 2),
            "operations": len(during),
            "availability": round(ok / len(during), 4) if during else None,
            "recovery_p50_s": _rounded(percentile(recoveries, 0.5)),
            "recovery_p99_s": _rounded(percentile(recoveries, 0.99)),
        }
    return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def report(ops: list[Operation], faults: list[Fault], **run: Any) -> dict[str, Any]:
    """The soak's report: the run's facts, outcomes by kind, the violations with their history
    entries, and each fault kind's availability and recovery."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for op in ops:
        counts[op.kind][op.outcome] += 1
    totals = Counter(op.outcome for op in ops)
    violations = [op.to_json() for op in ops if op.outcome in VIOLATIONS]
    durations = [o.end - o.start for o in ops if o.end is not None and o.outcome == "ok"]
    return {
        **run,
        "operations": len(ops),
        "outcomes": {k: totals.get(k, 0) for k in OUTCOMES},
        "by_kind": {kind: {k: c.get(k, 0) for k in OUTCOMES} for kind, c in sorted(counts.items())},
        "ok_latency_p50_ms": _rounded((statistics.median(durations) * 1000) if durations else None),
        "violations": violations[:200],
        "violation_count": len(violations),
        "faults": [f.__dict__ for f in faults],
        "per_fault": faults_summary(ops, faults),
    }
