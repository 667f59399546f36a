"""Ladder diagrams and the benchmark page, without a browser: what they draw from input whose
right drawing is known (tests/pcaps.py makes the captures), and that the pages fetch nothing.
The browser tests (tests/integration/test_pages.py) look at the same pages in Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dpkt
import pcaps
import pytest
from labstack import ROOT, capture
from labtools import benchpage, ladder
from labtools.__main__ import main

BENCH_RUNS = sorted((ROOT / "tests" / "data").glob("bench-*.json"))


@pytest.fixture
def drawn(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "made.pcap"
    path.write_bytes(pcaps.pcap(pcaps.conversation()))
    return ladder.render_file(path), path


def test_every_frame_is_one_arrow(drawn: tuple[str, Path]) -> None:
    page, path = drawn
    frames = sum(1 for _ in dpkt.pcap.Reader(path.open("rb")))
    assert page.count('<g class="arrow') == frames == 13
    assert page.count('<section class="conversation"') == 3  # TCP, UDP, the ARP frame


def test_tcp_is_drawn_with_relative_numbers_phases_and_who_closed_first(
    drawn: tuple[str, Path],
) -> None:
    page, _ = drawn
    for label in ("[SYN] seq=0 len=0", "[SYN, ACK] seq=0 ack=1 len=0", "[ACK] seq=1 ack=1 len=0"):
        assert f">{label}<" in page
    for phase in ("handshake", "exchange", "half-close", "close"):
        assert f'class="phase {phase}"' in page
    assert "the client closed first" in page
    assert "⋯ 2.5 s later ⋯" in page  # the pause is a break in the time axis
    assert ">0.000 ms<" in page and ">2500.000 ms<" in page


def test_the_framed_request_and_reply_are_decoded_field_by_field(
    drawn: tuple[str, Path],
) -> None:
    page, _ = drawn
    (app,) = [
        ld
        for ld in ladder.ladders(capture.read_frames(pcaps.pcap(pcaps.conversation())))
        if ld.proto == "tcp"
    ]
    completed = [i for i, arrow in enumerate(app.arrows) if arrow.decoded]
    assert completed == [4, 5]  # the request's second segment completes it; then the reply
    text = " ".join(
        f"{name}: {value}"
        for arrow in app.arrows
        for m in arrow.decoded
        for name, value in m.fields
    )
    prefix = pcaps.REQUEST[:2]
    assert f"length prefix: {prefix.hex(' ')} = {int.from_bytes(prefix)}" in text
    assert '"action": "search"' in text and '"content-type": "text/json"' in text
    assert "Misty Mountains" in text
    assert "length prefix" in page and "JSON header" in page


def test_udp_and_other_frames_have_their_own_arrows(drawn: tuple[str, Path]) -> None:
    page, _ = drawn
    assert page.count(">UDP datagram len=10<") == 2
    assert ">ARP<" in page


def test_the_page_fetches_nothing(drawn: tuple[str, Path]) -> None:
    page, _ = drawn
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and "url(" not in page


def test_a_capture_that_is_not_one_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    assert main(["ladder", str(junk)]) == 2
    assert capsys.readouterr().err.startswith("labtools ladder: ")


def test_the_command_writes_the_page(tmp_path: Path, drawn: tuple[str, Path]) -> None:
    _, path = drawn
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"10.0.0.3": "server\nhostname lab-server"}))
    out = tmp_path / "out.html"
    assert main(["ladder", str(path), "--names", str(names), "--out", str(out)]) == 0
    assert ">hostname lab-server<" in out.read_text()


@pytest.mark.parametrize("frames", [20, 320])
def test_a_big_capture_is_drawn_in_linear_size(frames: int, tmp_path: Path) -> None:
    """No drawing cost grows faster than the capture: 16 times the frames, 16 times the page."""
    base = pcaps.conversation(gap_s=0.001)[:8]
    made = [(when + i * 0.01, raw) for i in range(frames // 8 + 1) for when, raw in base]
    page = ladder.page(capture.read_frames(pcaps.pcap(made[:frames])), "big")
    per_frame = len(page) / frames
    assert per_frame < 2500, per_frame


def test_the_bench_page_draws_every_workload_a_run_has() -> None:
    assert BENCH_RUNS, "tests/data/bench-*.json: saved runs of make bench"
    report = json.loads(BENCH_RUNS[-1].read_text())
    drawn = dict(benchpage.charts(report))
    workloads = {r["workload"] for r in report["summary"] if r.get("table") is None}
    sizes = {r["size_bytes"] for r in report["summary"] if r["workload"] == "rr"}
    expected = {f"rr-{s}" for s in sizes} | {f"rr-cpu-{s}" for s in sizes}
    expected |= workloads - {"rr"}
    if any(r.get("table") == "steps" for r in report["summary"]):
        expected |= {"steps-idle", "steps-rr"}
    assert set(drawn) == expected
    page = benchpage.page([report], ["run.json"])
    assert report["started"] in page and "interleaved runs" in page
    assert page.count('class="bar"') + page.count('class="point"') >= len(report["summary"])
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)


def test_two_runs_side_by_side_with_the_change_of_each_median() -> None:
    old, new = (json.loads(p.read_text()) for p in BENCH_RUNS[:2])
    page = benchpage.page([old, new], ["a.json", "b.json"])
    assert page.count('<div class="stack">') == 2
    rr_old = next(r for r in old["summary"] if r["workload"] == "rr" and r["server"] == "project")
    rr_new = benchpage._find(
        new["summary"],
        **{k: rr_old.get(k) for k in ("workload", "server", "conns", "size_bytes", "table")},
    )
    if rr_new:
        ratio = rr_new["req_per_s"] / rr_old["req_per_s"]
        assert f"{ratio:.2f}\N{MULTIPLICATION SIGN}" in page


def test_a_file_that_is_not_a_run_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    assert main(["bench-page", str(other)]) == 2
    assert "not a results file" in capsys.readouterr().err


def test_mangled_frames_are_arrows_that_say_so() -> None:
    frames = pcaps.conversation()
    mangled = [(when, raw[: len(raw) // 3]) for when, raw in frames] + [(200.0, b"\x00" * 5)]
    records = capture.read_frames(pcaps.pcap(mangled))
    assert len(records) == len(mangled)
    page = ladder.page(records, "mangled")
    assert page.count('<g class="arrow') == len(mangled)
