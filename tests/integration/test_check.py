"""The conformance kit is only as good as its ability to tell right from wrong: the lab's own
server and client pass every case; the tutorial's steps give the profile their design predicts;
each deliberately broken program (tests/programs/) fails exactly the cases of its mistake, and
nothing else; hostile programs get verdicts, and the kit neither hangs nor leaves anything."""

from __future__ import annotations

import io
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import children
import docker
import dpkt
import pytest
from labstack import ROOT
from labstack.lifecycle import labelled_leftovers
from labtools import transcripts

pytestmark = pytest.mark.check
SPREAD = True  # each test stands alone (its own kit run): make test spreads them over workers

PROGRAMS = ROOT / "tests" / "programs"
STEPS = ROOT / "services" / "labtutorial"
# Every wait in a check has a bound, so a check never hangs: one that has not ended here fails.
# (How long a check takes is a figure, dated in docs/check.md, not a bound: on a busy machine
# a check that took 39 s alone took 80 s beside the other groups.)
HANG_S = 120


def labcheck(mode: str, *args: str, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    """``python -m labcheck MODE ARGS --report``: exit status, the JSON report, the table."""
    report = tmp_path / "report.json"
    started = time.monotonic()
    proc = children.run(
        [sys.executable, "-m", "labcheck", mode, *args, "--report", str(report)],
        timeout_s=HANG_S,
    )
    print(f"the check took {time.monotonic() - started:.0f} s, exit {proc.returncode}")
    print(proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc.returncode, data, proc.stdout + proc.stderr


def verdicts(report: dict[str, Any], verdict: str) -> set[str]:
    return {case["id"] for case in report["cases"] if case["verdict"] == verdict}


def test_the_labs_own_server_passes_every_case(tmp_path: Path) -> None:
    code, report, table = labcheck(
        "server", "--image", "sockets-lab/server:latest", tmp_path=tmp_path
    )
    assert code == 0 and verdicts(report, "fail") == set(), table
    assert report["protocols"] == ["echo", "udp", "greet", "app"]
    assert verdicts(report, "n/a") == set(), table
    junit = ET.parse(tmp_path / "report.xml").getroot()  # noqa: S314 (the kit's own report)
    assert junit.get("failures") == "0" and int(junit.get("tests", 0)) == len(report["cases"])


# What each design predicts (the tutorial's steps, as the lab serves them).
STEP_PROFILES = {
    "blocking": {"echo.two-clients", "echo.fifty-clients", "echo.idle-client", "echo.slow-reader"},
    "threaded": {"echo.fifty-clients"},  # a thread per client: the pids limit is its ceiling
    "multiconn": {"echo.slow-reader"},  # buffers all a client sends while it reads none
}


@pytest.mark.parametrize("step", sorted(STEP_PROFILES))
def test_the_tutorials_steps_fail_what_their_design_predicts(step: str, tmp_path: Path) -> None:
    code, report, table = labcheck(
        "server", "--program", str(STEPS / f"{step}.py"), "--args", ":: 65432", tmp_path=tmp_path
    )
    assert code == 1, table
    assert verdicts(report, "fail") == STEP_PROFILES[step], table
    assert report["protocols"] == ["echo"]


BROKEN_SERVERS = {
    "loopback_server.py": {"reach.ipv4", "reach.ipv6"},
    "one_recv_server.py": {"echo.large", "echo.bytewise", "echo.half-close"},
    "ignores_close_server.py": {"echo.close-seen"},
    "dies_on_reset_server.py": {"echo.reset-then-next"},
    "send_not_sendall_server.py": {"echo.large", "echo.half-close"},
    "good_server.py": set(),
}


@pytest.mark.parametrize("program", sorted(BROKEN_SERVERS))
def test_each_mistake_fails_exactly_its_cases(program: str, tmp_path: Path) -> None:
    code, report, table = labcheck(
        "server", "--program", str(PROGRAMS / program), tmp_path=tmp_path
    )
    assert verdicts(report, "fail") == BROKEN_SERVERS[program], table
    assert code == (1 if BROKEN_SERVERS[program] else 0)
    for case in report["cases"]:
        if case["verdict"] == "fail":
            assert case["hint"], case  # every failure tells the learner what to do
            if case["id"] in ("reach.ipv4", "reach.ipv6"):
                continue  # refused at once: the socket table says why
            # and shows the packets: the pcap, and its ladder with an arrow for each
            pcap = Path(case["capture"]).read_bytes()
            packets = sum(1 for _ in dpkt.pcap.Reader(io.BytesIO(pcap)))
            assert Path(case["ladder"]).read_text().count('<g class="arrow') == packets > 0


CLIENTS: dict[str, tuple[list[str], set[str]]] = {
    "the lab's client": (
        [
            "--image",
            "sockets-lab/client:latest",
            "--args",
            "echo --host {host} --text {message} --deadline 2 --retries 0 --timeout 5",
        ],
        set(),
    ),
    "good_client.py": (["--program", str(PROGRAMS / "good_client.py")], set()),
    "reads_once_client.py": (
        ["--program", str(PROGRAMS / "reads_once_client.py")],
        {"client.segments", "client.sendall"},
    ),
    "hardcoded_client.py": (
        ["--program", str(PROGRAMS / "hardcoded_client.py")],
        {"client.reaches-server"},
    ),
}


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_clients_are_graded_against_proving_servers(name: str, tmp_path: Path) -> None:
    args, failing = CLIENTS[name]
    code, report, table = labcheck("client", *args, tmp_path=tmp_path)
    assert verdicts(report, "fail") == failing, table
    assert code == (1 if failing else 0)
    if name == "hardcoded_client.py":  # told so once, then nothing else is judged
        (reach,) = [c for c in report["cases"] if c["id"] == "client.reaches-server"]
        assert "127.0.0.1" in reach["hint"]
        assert verdicts(report, "pass") == {"client.server-down"}


def test_a_program_that_is_not_there_is_exit_2_with_one_line(tmp_path: Path) -> None:
    code, _, output = labcheck(
        "server", "--program", str(tmp_path / "nowhere.py"), tmp_path=tmp_path
    )
    assert code == 2
    assert output.strip().splitlines()[-1].startswith("labcheck: cannot run the program: ")


HOSTILE = {  # a program, what the kit must say of it
    "forks_server.py": "at its limit of 32",
    "fills_memory_server.py": "killed: out of memory",
    "prints_forever_server.py": "listens on nothing",
}


@pytest.mark.parametrize("program", sorted(HOSTILE))
def test_hostile_programs_get_verdicts_and_leave_nothing(program: str, tmp_path: Path) -> None:
    code, report, table = labcheck(
        "server", "--program", str(PROGRAMS / program), tmp_path=tmp_path
    )
    assert code == 1, table
    assert verdicts(report, "fail") == {"server.listening"}, table
    assert any(HOSTILE[program] in note for note in report["notes"]), report["notes"]
    # this run's label: other checks may run meanwhile (make test spreads this module's tests)
    assert labelled_leftovers(docker.from_env(), f"org.sockets-lab.check={report['run']}") == []


def test_a_client_that_never_exits_is_stopped_and_told(tmp_path: Path) -> None:
    code, report, table = labcheck(
        "client", "--program", str(PROGRAMS / "hangs_client.py"), tmp_path=tmp_path
    )
    assert code == 1, table
    assert any("killed" in case["observed"] for case in report["cases"]), table


WALK_THROUGH = [
    b
    for b in transcripts.blocks(ROOT / "docs" / "check.md")
    if "check-server PROGRAM=docs/check/" in b.command
]


@pytest.mark.parametrize("block", WALK_THROUGH, ids=lambda b: b.command.split("/")[-1])
def test_the_walk_through_shows_what_the_kit_says(block: transcripts.Block, tmp_path: Path) -> None:
    """docs/check.md quotes the kit's table for each step; the verdicts must still be those."""
    program = block.command.split("PROGRAM=")[1].split()[0]
    shown = {
        case: verdict
        for verdict, case in re.findall(r"^  (PASS|FAIL|INFO) +(\S+)", block.output, re.M)
    }
    assert shown, f"no verdicts in the transcript of {block.command} (run make transcripts)"
    _, report, table = labcheck("server", "--program", str(ROOT / program), tmp_path=tmp_path)
    applicable = {c["id"]: c["verdict"].upper() for c in report["cases"] if c["verdict"] != "n/a"}
    assert applicable == shown, table  # the rest are not applicable in both
