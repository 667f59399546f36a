"""The fuzzers' findings, kept: every seed (and every input a fuzzer kept in .fuzz/) replayed
through both targets, and a short coverage-guided run of each target as part of the suite."""

from __future__ import annotations

import re
import subprocess
import sys
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
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert done and int(done[-1].split()[1]) > 1000  # it really ran


def test_the_cost_oracle_finds_a_quadratic_parser() -> None:
    """What a fuzzer would save: the old JSON string pattern on 32 KiB of escaped quotes (about
    70 us a byte here, 3.4x the bound; at 8 KiB it was 1.5x, and a quiet moment of the machine
    could bring it under)."""
    old = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
    quadratic = targets.with_cost_oracle(lambda data: old.sub(b"", data))  # type: ignore
    with pytest.raises(targets.CostFinding, match="us a byte"):
        quadratic(b'"' + b'\\"' * (16 << 10))
    targets.with_cost_oracle(targets.codec_one_input)(  # the codec on the same bytes: linear
        b"\x00\x0f" + framing.encode_json({"v": '"' * (16 << 10)})[:-3]
    )
