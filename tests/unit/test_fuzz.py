"""The fuzzers' findings, kept: every seed (and every input a fuzzer kept in .fuzz/) replayed
through both targets, and a short coverage-guided run of each target as part of the suite."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab import framing

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
sys.path.insert(0, str(FUZZ))

import seeds  # noqa: E402
import targets  # noqa: E402

TARGETS = targets.TARGETS
SHORT_RUN_S = 8  # per target: the suite's share of fuzzing (`make fuzz` runs longer)
KEPT = [
    path
    for target in TARGETS
    for folder in (FUZZ / "seeds", FUZZ.parents[1] / ".fuzz")
    for path in sorted((folder / target).glob("*"))
]


def test_every_seed_is_in_the_repo() -> None:
    for target in TARGETS:
        on_disk = {path.name: path.read_bytes() for path in (FUZZ / "seeds" / target).iterdir()}
        assert on_disk == {**on_disk, **seeds.seeds(target)}, "run: python tests/fuzz/seeds.py"


@pytest.mark.parametrize("path", KEPT, ids=[f"{p.parent.name}/{p.name}" for p in KEPT])
def test_kept_input_replays_cleanly(path: Path) -> None:
    TARGETS[path.parent.name](path.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_short_fuzz_run_finds_nothing(target: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(FUZZ / "run.py"),
            target,
            f"-max_total_time={SHORT_RUN_S}",
            "-max_len=4096",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path),
            str(FUZZ / "seeds" / target),
        ],
        capture_output=True,
        text=True,
        timeout=SHORT_RUN_S + 60,
        check=False,
    )
    done = [line for line in proc.stderr.splitlines() if line.startswith("Done ")]
    print(f"{target}: {done[-1] if done else proc.stderr[-2000:]}")
    # atheris prints a finding's Python exception on stdout, libFuzzer its own lines on stderr;
    # the input is in tmp_path, which pytest keeps for three runs only: it goes in the message.
    found = {p.name: p.read_bytes() for p in tmp_path.glob("crash-*")}
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}\n" + "".join(
        f"{name}: {data!r}\n" for name, data in found.items()
    )
    assert done and int(done[-1].split()[1]) > 1000  # it really ran


def burn(seconds: float) -> None:
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


def test_the_cost_oracle_judges_by_the_least_of_its_timings() -> None:
    """One costly call in three (a collection, a noisy neighbour) is not a finding; a cost that
    comes back every time is."""
    calls: list[bytes] = []

    def once_slow(data: bytes) -> None:
        calls.append(data)
        burn(0.08 if len(calls) == 1 else 0)

    targets.with_cost_oracle(once_slow)(b"x" * 100)  # 80 ms > the 50 ms floor, once
    assert len(calls) == targets.TIMINGS
    calls.clear()

    def always_slow(data: bytes) -> None:
        calls.append(data)
        burn(0.06)

    with pytest.raises(targets.CostFinding, match="100 bytes took"):
        targets.with_cost_oracle(always_slow)(b"x" * 100)
    assert len(calls) == targets.TIMINGS


def test_the_cost_oracle_finds_a_quadratic_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a fuzzer would save: the old JSON string pattern on 32 KiB of escaped quotes (about
    70 us a byte here, 3.4x the bound; at 8 KiB it was 1.5x, and a quiet moment of the machine
    could bring it under). Timed once (the test above shows what more timings do): three
    would take 8 s of CPU here."""
    monkeypatch.setattr(targets, "TIMINGS", 1)
    old = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
    quadratic = targets.with_cost_oracle(lambda data: old.sub(b"", data))  # type: ignore
    with pytest.raises(targets.CostFinding, match="us a byte"):
        quadratic(b'"' + b'\\"' * (16 << 10))
    targets.with_cost_oracle(targets.codec_one_input)(  # the codec on the same bytes: linear
        b"\x00\x0f" + framing.encode_json({"v": '"' * (16 << 10)})[:-3]
    )
