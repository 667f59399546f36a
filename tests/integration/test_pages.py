"""The lab's pages in a real browser (headless Chromium, labtools.browser): the ladder of a demo
captured across containers, and the benchmark's page of one run and of two side by side. Each
is opened at 375 px (a phone) and 1440 px (a laptop): no console error, nothing fetched, the
right number of arrows, the decoded request as text, no label over another, and a screenshot
kept in artifacts/pages/."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import children
import dpkt
import pytest
from lab import registry
from labstack import ROOT, ComposeStack, capture
from labtools import benchpage, ladder
from labtools.browser import ARTIFACTS, Browser
from labtools.capture import host_names

pytestmark = pytest.mark.browser

WIDTHS = (375, 1440)
BENCH_RUNS = sorted((ROOT / "tests" / "data").glob("bench-*.json"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as opened:
        yield opened


@pytest.fixture(scope="module")
def demo_capture(stack: ComposeStack) -> tuple[bytes, dict[str, str]]:
    result, pcap = stack.demo_on_the_wire()
    assert result.exit_code == 0, result
    return pcap, host_names(stack)


def _frames(pcap: bytes) -> int:
    """The capture's packets, counted by dpkt alone (not through the lab's reader)."""
    return sum(1 for _ in dpkt.pcap.Reader(io.BytesIO(pcap)))


@pytest.mark.parametrize("width", WIDTHS)
def test_the_demos_ladder_in_a_browser(
    browser: Browser,
    demo_capture: tuple[bytes, dict[str, str]],
    stack: ComposeStack,
    width: int,
    tmp_path: Path,
) -> None:
    pcap, names = demo_capture
    page = tmp_path / "demo.html"
    page.write_text(ladder.page(capture.read_frames(pcap), "the demo on the wire", names))
    seen = browser.open(
        page, width, ARTIFACTS / f"ladder-demo-{width}.png", counts=("g.arrow", "section")
    )
    assert seen.console_errors == []
    assert seen.fetched == []  # self-contained: nothing from a network, not even a font
    assert seen.counts["g.arrow"] == _frames(pcap) > 20
    tcp = {row.default_port for row in registry.LISTENERS if row.kind == "tcp"}
    assert seen.counts["section"] >= 2 * len(tcp)  # every TCP listener over IPv4 and IPv6
    # the framed request, field by field, as text on the page
    words = " ".join(seen.text.split())  # the page wraps long fields over lines
    for field in ("length prefix", "JSON header", '"action": "', '"content-length": '):
        assert field in words, field
    assert stack.ip_of("server", 4) in seen.text and "hostname" in seen.text
    assert seen.texts > 100 and seen.overlaps == [], seen.overlaps
    assert seen.clipped == []
    detail = browser.click_first("g.arrow")
    assert "SYN" in detail and "→" in detail  # a click keeps the packet's details below


@pytest.mark.parametrize("width", WIDTHS)
def test_the_benchmark_page_in_a_browser(browser: Browser, width: int, tmp_path: Path) -> None:
    assert BENCH_RUNS, "tests/data/bench-*.json"
    for name, runs in (("one", BENCH_RUNS[-1:]), ("two", BENCH_RUNS[:2])):
        page = tmp_path / f"bench-{name}.html"
        page.write_text(benchpage.render_files(runs))
        seen = browser.open(
            page,
            width,
            ARTIFACTS / f"bench-{name}-{width}.png",
            counts=("figure.chart", "g.bar, g.point"),
        )
        assert seen.console_errors == [] and seen.fetched == []
        expected = sum(len(benchpage.charts(json.loads(r.read_text()))) for r in runs)
        assert seen.counts["figure.chart"] == expected > 0
        assert seen.counts["g.bar, g.point"] > 0
        assert seen.overlaps == [], seen.overlaps
        assert seen.clipped == []
        if name == "two":
            assert "B/A" in seen.text


def test_make_capture_writes_the_capture_and_its_ladders(tmp_path: Path) -> None:
    """The command itself (scripts/capture.py): a pcapng for Wireshark and the page beside it,
    one arrow per packet of that pcapng."""
    proc = children.run(
        [sys.executable, str(ROOT / "scripts" / "capture.py"), "--out", str(tmp_path)],
        timeout_s=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (pcapng,) = tmp_path.glob("demo-*.pcapng")
    page = pcapng.with_suffix(".html").read_text()
    packets = sum(1 for _ in dpkt.pcapng.Reader(pcapng.open("rb")))
    assert page.count('<g class="arrow') == packets > 20
    assert "drawn as ladders in" in proc.stdout
