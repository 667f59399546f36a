"""The packets of each failed case: the check's whole capture, cut to each failed case's time
(from when it began to half a second after it ended), one pcap file per case beside the report,
and the same packets drawn as ladder diagrams (``<case>.html``, labtools.ladder), so that a
learner can see the conversation that failed in a browser, or open it in Wireshark."""

from __future__ import annotations

import io
from pathlib import Path

import dpkt
from labstack import capture
from labtools import ladder

from .report import Report

AFTER_S = 0.5  # a case's last packets (a FIN, a reset) can come just after it ends


def keep(
    pcap: bytes, report: Report, folder: Path, names: dict[str, str] | None = None
) -> list[Path]:
    """Write ``folder/captures/<case>.pcap`` and its ladder ``<case>.html`` for each failed case
    that has packets; the case's ``capture`` and ``ladder`` fields name them (``names`` label
    the lifelines). Returns the pcap files written."""
    failed = [c for c in report.cases if c["verdict"] == "fail" and c.get("started")]
    if not pcap or not failed:
        return []
    reader = dpkt.pcap.Reader(io.BytesIO(pcap))
    packets = list(reader)
    written = []
    for case in failed:
        begin, end = case["started"], case["started"] + case["duration_s"] + AFTER_S
        chosen = [(when, raw) for when, raw in packets if begin <= when <= end]
        if not chosen:
            continue
        path = folder / "captures" / f"{case['id']}.pcap"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            writer = dpkt.pcap.Writer(out, snaplen=reader.snaplen, linktype=reader.datalink())
            for when, raw in chosen:
                writer.writepkt(raw, ts=when)
        case["capture"] = str(path)
        page = path.with_suffix(".html")
        page.write_text(
            ladder.page(
                capture.read_frames(path.read_bytes()),
                f"{case['id']}: {report.program}",
                names,
            )
        )
        case["ladder"] = str(page)
        written.append(path)
    return written
