"""Is the machine quiet enough for the benchmark's figures? (``make bench``)

Two checks, both reported with the run; a run that fails either is called disturbed, and its
report (the tables, and docs/benchmark.md) says so, and by how much, above its figures:

- **Calibration.** Before the first measurement and after the last, a fixed pure-Python loop is
  timed on each pinned core, in a container of its own pinned there (the fastest of
  ``CALIBRATION_ROUNDS``: a moment's interruption does not count, a core that is slower all
  the time does). The same loop on the same core takes the same time on a quiet machine; when
  a core's two times differ by more than ``CALIBRATION_TOLERANCE``, it ran at another speed at
  one end of the run than at the other: a neighbour, a frequency change, a busy VM host. (On
  the 2-core VMs this project's CI uses, calibrations a few seconds apart on an idle machine
  took 78 to 146 ms, measured on 2026-12-01: such a machine is noisy, and the check says so.)
- **Other processes on the pinned cores.** The kernel's count of busy time on those cores (user,
  nice and system, from ``/proc/stat``, which a container reads as the host's) over the run,
  less the CPU time of the benchmark's own containers (their cgroups' counters), plus the time a
  hypervisor took those cores away (steal): what anything else took there. More than
  ``OTHERS_TOLERANCE`` of a core on average is a disturbance. (Interrupt and softirq time, much
  of it the veth traffic the benchmark itself makes, is not counted.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

CALIBRATION_ROUNDS = 7
CALIBRATION_TOLERANCE = 0.25  # a core's loop 25% slower or faster after the run than before
OTHERS_TOLERANCE = 0.10  # other processes took a tenth of a core on average, or more
USER_HZ = 100  # /proc/stat's unit (jiffies), on every Linux the engine runs on
LOOP = """
import time
def spin(n):
    x = 0
    for i in range(n):
        x += i * i
    return x
warm = time.perf_counter() + 1.0  # a second of the same work first: a core woken from idle
while time.perf_counter() < warm:
    spin(100_000)
times = []
for _ in range({rounds}):
    began = time.perf_counter()
    spin(2_000_000)
    times.append(time.perf_counter() - began)
print(min(times))
"""


def calibration_source(rounds: int = CALIBRATION_ROUNDS) -> str:
    return LOOP.format(rounds=rounds)


def cores_of(cpuset: str) -> list[int]:
    """The cores a cpuset string ("1", "1-3", "0,2") names."""
    cores: list[int] = []
    for part in cpuset.split(","):
        low, _, high = part.partition("-")
        cores += range(int(low), int(high or low) + 1)
    return cores


def cgroup_seconds(text: str) -> float:
    """Seconds from cgroup v2's cpu.stat (usage_usec) or v1's cpuacct.usage (ns)."""
    for line in text.splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1]) / 1e6
    return int(text.split(maxsplit=1)[0]) / 1e9


def busy_seconds(proc_stat: str, cores: Iterable[int]) -> float:
    """User, nice, system and steal time of ``cores`` so far, from the text of /proc/stat."""
    wanted = {f"cpu{core}" for core in cores}
    total = 0
    for line in proc_stat.splitlines():
        fields = line.split()
        if fields and fields[0] in wanted:
            user, nice, system = (int(v) for v in fields[1:4])
            steal = int(fields[8]) if len(fields) > 8 else 0
            total += user + nice + system + steal
    return total / USER_HZ


def calibrate(run_on_core: Callable[[int, str], str], cores: list[int]) -> dict[str, float]:
    """Each core's calibration time: ``run_on_core(core, source)`` runs the loop pinned there
    and returns what it printed."""
    return {str(core): round(float(run_on_core(core, calibration_source())), 4) for core in cores}


def judge(
    before: dict[str, float],
    after: dict[str, float],
    others_s: float | None,
    wall_s: float,
) -> dict[str, Any]:
    """The quiet-machine check's verdict: the figures, whether the run was disturbed, and why."""
    why = []
    drift = {}
    for core, start in before.items():
        end = after.get(core)
        if end is None or start <= 0:
            continue
        drift[core] = round(end / start - 1, 3)
        if abs(drift[core]) > CALIBRATION_TOLERANCE:
            why.append(
                f"core {core}'s calibration loop took {start * 1000:.0f} ms before the run and "
                f"{end * 1000:.0f} ms after ({drift[core]:+.0%})"
            )
    share = round(others_s / wall_s, 3) if others_s is not None and wall_s > 0 else None
    if share is not None and share > OTHERS_TOLERANCE:
        why.append(
            f"other processes used {share:.0%} of a core on the pinned cores "
            f"({others_s:.0f} s of CPU in {wall_s:.0f} s)"
        )
    return {
        "calibration_before_s": before,
        "calibration_after_s": after,
        "calibration_drift": drift,
        "others_core_share": share,
        "disturbed": bool(why),
        "why": why,
    }


def describe(check: dict[str, Any] | None) -> str:
    """One line for the report."""
    if not check:
        return "Quiet-machine check: not made (unpinned run)."
    after = check["calibration_after_s"]
    before = ", ".join(
        f"core {core} {seconds * 1000:.0f} -> {after.get(core, 0) * 1000:.0f} ms"
        for core, seconds in check["calibration_before_s"].items()
    )
    share = check["others_core_share"]
    others = (
        "" if share is None else f"; other processes on the pinned cores: {share:.0%} of a core"
    )
    if check["disturbed"]:
        return (
            f"**Quiet-machine check: DISTURBED** ({before}{others}): "
            + "; ".join(check["why"])
            + ". The figures of this run are not comparable with a quiet run's."
        )
    return f"Quiet-machine check: quiet (calibration loop {before}{others})."
