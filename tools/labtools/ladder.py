"""Ladder diagrams: a capture drawn as the sequence diagram every networking course puts on the
board. Two lifelines a conversation, one arrow a packet, time going down.

    python -m labtools ladder capture.pcapng > capture.html

The page is one self-contained HTML file: the SVG is written here, by hand, with its style and
a few lines of script inline; nothing is fetched when it is viewed (no CDN, font or script), and
it stays small (a few hundred bytes a packet). Why hand-written SVG: a ladder is lines, arrow
heads and text at computed places; a charting library would add hundreds of kilobytes to every
page and still need this layout.

What a diagram shows, for each conversation (a TCP connection, a UDP flow, or the other frames
between two hosts):

- a lifeline per host, labelled with what we know of it (container, hostname, addresses, port);
- an arrow per packet in time order: TCP flags, relative sequence and acknowledgement numbers,
  the payload's length and first bytes; the time since the first packet of the capture at the
  left, in milliseconds. Rows keep their order at any time scale: a gap adds space by its
  logarithm, and a gap of a second or more is drawn as a break that says how long it was;
- a framed message (the app protocol: 2-byte length, JSON header, content) decoded field by
  field beside the arrow that completed it, by the lab's own decoder;
- the TCP phases (handshake, exchange, half-close, close or reset) as bars at the left, and
  who closed first;
- everything about a packet on hover (its title) and on click (the panel at the bottom).

Layout is by construction free of overlaps: each row is as tall as its tallest text (the
arrow's two label lines, or the decoded fields beside it), and every text has its own column.
"""

from __future__ import annotations

import html
import json
import math
import struct
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lab import framing, registry
from labstack import capture
from labstack.capture import Packet

# Columns (px): time | phases | client lifeline ... server lifeline | decoded fields
TIME_X, PHASE_X, CLIENT_X, SERVER_X, DECODED_X, WIDTH = 4, 96, 190, 500, 520, 900
LINE = 14  # px a text line
ROW = 2 * LINE + 20  # an arrow with its two label lines
SLANT = 10  # an arrow falls this much: time passes while a packet travels
LABEL_CHARS = 40  # an arrow's label line, at most (it fits between the lifelines)
DECODED_CHARS = 52  # a decoded field's line, at most
BREAK_S = 1.0  # a gap this long is drawn as a break in the time axis
MAX_DECODED = 4  # lines per decoded field
FIRST_BYTES = 16
PORT_NAMES = {(row.kind, row.default_port): row.name for row in registry.LISTENERS}


@dataclass
class Message:
    """A framed message decoded from one direction of a stream."""

    fields: list[tuple[str, str]]  # (field, value)


@dataclass
class Arrow:
    packet: Packet
    from_client: bool
    label: list[str]  # two lines above the arrow
    detail: str  # everything, for the hover title and the click panel
    decoded: list[Message] = field(default_factory=list)


@dataclass
class Ladder:
    proto: str
    client: tuple[str, int]
    server: tuple[str, int]
    arrows: list[Arrow]
    phases: list[tuple[str, int, int]]  # (name, first arrow, last arrow)
    summary: str


# -- from packets to ladders ------------------------------------------------------------------
def _key(p: Packet) -> frozenset[tuple[str, str, int]]:
    return frozenset({(p.proto, p.src, p.sport), (p.proto, p.dst, p.dport)})


def group(packets: Iterable[Packet]) -> list[tuple[list[Packet], tuple[str, int], tuple[str, int]]]:
    """Conversations in the order they began, each with its client (the side that sent the
    SYN, or else the side that sent first) and server. Every packet is in exactly one."""
    found: dict[frozenset[tuple[str, str, int]], list[Packet]] = {}
    for p in packets:
        found.setdefault(_key(p), []).append(p)
    out = []
    for members in found.values():
        first = next((p for p in members if p.flags == "S"), members[0])
        out.append((members, (first.src, first.sport), (first.dst, first.dport)))
    return out


def endpoint(ip: str, port: int) -> str:
    if not port:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def first_bytes(payload: bytes) -> str:
    shown = repr(payload[:FIRST_BYTES])
    return shown + ("..." if len(payload) > FIRST_BYTES else "")


def _decode_messages(packets: list[Packet]) -> dict[int, list[Message]]:
    """Framed messages in one direction's packets: {index in ``packets``: messages completed by
    that packet}. A resent segment's bytes are read once; stops at the first thing that is not a
    frame (an echo's random bytes) and at a segment out of order."""
    decoder = framing.MessageDecoder()
    stream = bytearray()  # what the messages' length prefixes are read from, kept bounded
    start = 0  # where the next message begins in the stream
    found: dict[int, list[Message]] = {}
    for index, fresh in capture.new_bytes(packets):
        if not fresh:
            continue
        decoder.feed(fresh)
        stream += fresh
        try:
            for message in decoder.messages():
                (length,) = struct.unpack_from(">H", stream, start)
                found.setdefault(index, []).append(
                    _fields(bytes(stream[start : start + 2]), length, message)
                )
                start += 2 + length + len(message.content)
                del stream[:start]
                start = 0
        except (framing.FramingError, struct.error):
            return found
    return found


def _fields(prefix: bytes, length: int, message: framing.Message) -> Message:
    content = (
        json.dumps(message.value, ensure_ascii=False)
        if message.is_json
        else first_bytes(message.content)
    )
    return Message(
        [
            ("length prefix", f"{prefix.hex(' ')} = {length}: the header's size"),
            ("JSON header", json.dumps(message.header, ensure_ascii=False)),
            (
                "content",
                f"{len(message.content)} B {message.content_type} "
                f"({message.content_encoding}): {content}",
            ),
        ]
    )


def _phases(arrows: list[Arrow]) -> tuple[list[tuple[str, int, int]], str]:
    """TCP phases by arrow index, and who closed first."""
    flags = [a.packet.flags for a in arrows]
    n = len(arrows)
    handshake_end = -1
    if flags and flags[0] == "S":
        handshake_end = next(
            (i for i in range(1, n) if flags[i - 1] == "SA" and "A" in flags[i]), min(2, n - 1)
        )
    fins = [i for i, f in enumerate(flags) if "F" in f]
    reset = next((i for i, f in enumerate(flags) if "R" in f), None)
    phases = []
    if handshake_end >= 0:
        phases.append(("handshake", 0, handshake_end))
    end_of_exchange = min([i for i in (*fins[:1], reset) if i is not None], default=n) - 1
    if end_of_exchange > handshake_end:
        phases.append(("exchange", handshake_end + 1, end_of_exchange))
    closer = "no FIN seen"
    if fins:
        first = arrows[fins[0]]
        closer = f"the {'client' if first.from_client else 'server'} closed first"
        other = next((i for i in fins if arrows[i].from_client != first.from_client), None)
        if other is not None and other > fins[0]:
            phases.append(("half-close", fins[0], other - 1))
            phases.append(("close", other, n - 1))
        else:
            phases.append(("half-close" if other is None else "close", fins[0], n - 1))
    if reset is not None and (not fins or reset < fins[0]):
        phases.append(("reset", reset, n - 1))
        closer = f"the {'client' if arrows[reset].from_client else 'server'} reset"
    return phases, closer


def ladders(packets: list[Packet]) -> list[Ladder]:
    """Every packet, as an arrow in the ladder of its conversation."""
    out = []
    for members, client, server in group(packets):
        proto = members[0].proto
        isn: dict[tuple[str, int], int] = {}
        for p in members:
            isn.setdefault((p.src, p.sport), p.seq)
        sides = {
            True: [p for p in members if (p.src, p.sport) == client],
            False: [p for p in members if (p.src, p.sport) != client],
        }
        decoded = {side: _decode_messages(sides[side]) for side in sides} if proto == "tcp" else {}
        position = {True: 0, False: 0}
        arrows = []
        for p in members:
            from_client = (p.src, p.sport) == client
            index = position[from_client]
            position[from_client] += 1
            arrows.append(_arrow(p, from_client, isn, decoded.get(from_client, {}).get(index, [])))
        phases, closer = _phases(arrows) if proto == "tcp" else ([], "")
        name = PORT_NAMES.get((proto, server[1]), proto.upper() if proto != "other" else "")
        what = {"tcp": "TCP connection", "udp": "UDP flow", "other": "other frames"}[proto]
        summary = " · ".join(
            part
            for part in (
                f"{name} {what}".strip(),
                f"{endpoint(*client)} → {endpoint(*server)}",
                f"{len(arrows)} packet{'s' if len(arrows) != 1 else ''}",
                closer,
            )
            if part
        )
        out.append(Ladder(proto, client, server, arrows, phases, summary))
    return out


def _arrow(
    p: Packet, from_client: bool, isn: dict[tuple[str, int], int], decoded: list[Message]
) -> Arrow:
    if p.proto == "tcp":
        seq = (p.seq - isn.get((p.src, p.sport), p.seq)) % (1 << 32)
        ack = (p.ack - isn.get((p.dst, p.dport), p.ack)) % (1 << 32) if "A" in p.flags else 0
        names = {"S": "SYN", "F": "FIN", "R": "RST", "P": "PSH", "A": "ACK"}
        flags = ", ".join(names[f] for f in p.flags)
        head = f"[{flags}] seq={seq}" + (f" ack={ack}" if "A" in p.flags else "")
        head += f" len={len(p.payload)}"
    elif p.proto == "udp":
        head = f"UDP datagram len={len(p.payload)}"
    else:
        head = p.info or "frame"
    label = [head[:LABEL_CHARS], first_bytes(p.payload)[:LABEL_CHARS] if p.payload else ""]
    detail = [
        f"{endpoint(p.src, p.sport)} → {endpoint(p.dst, p.dport)}",
        head,
        f"at {p.time:.6f} (epoch)",
    ]
    if p.proto == "tcp":
        detail.append(f"absolute seq={p.seq} ack={p.ack}")
    if p.payload:
        detail.append(f"first bytes: {p.payload[:64].hex(' ')}")
    if p.outer is not None:
        detail.append(
            f"carried in VXLAN: {endpoint(p.outer.src, p.outer.sport)} → "
            f"{endpoint(p.outer.dst, p.outer.dport)}"
        )
    for message in decoded:
        detail += [f"{name}: {value}" for name, value in message.fields]
    return Arrow(p, from_client, label, "\n".join(detail), decoded)


# -- drawing ------------------------------------------------------------------------------------
def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _wrap(text: str, width: int, lines: int) -> list[str]:
    """At most ``lines`` lines of at most ``width`` characters, broken at spaces where it can."""
    return textwrap.wrap(
        text, width, max_lines=lines, placeholder=" ...", break_on_hyphens=False
    ) or [""]


def _decoded_lines(arrow: Arrow) -> list[str]:
    lines = []
    for message in arrow.decoded:
        for name, value in message.fields:
            wrapped = _wrap(f"{name}: {value}", DECODED_CHARS, MAX_DECODED)
            lines += wrapped
    return lines


def svg(ladder: Ladder, names: dict[str, str], t0: float) -> str:
    """One conversation's ladder as an SVG element."""
    parts: list[str] = []
    roles = ("client", "server") if ladder.proto != "other" else ("", "")
    client_label = _host_lines(roles[0], ladder.client, names)
    server_label = _host_lines(roles[1], ladder.server, names)
    for x, lines in ((CLIENT_X, client_label), (SERVER_X, server_label)):
        for i, line in enumerate(lines):
            parts.append(
                f'<text class="host" x="{x}" y="{18 + i * LINE}" text-anchor="middle">'
                f"{_esc(line)}</text>"
            )
    top = 18 + max(len(client_label), len(server_label)) * LINE
    y = top
    rows: list[tuple[int, int]] = []  # (arrow y, row bottom)
    previous: float | None = None
    for arrow in ladder.arrows:
        gap = 0.0 if previous is None else max(0.0, arrow.packet.time - previous)
        previous = arrow.packet.time
        if gap >= BREAK_S:
            parts.append(
                f'<text class="gap" x="{(CLIENT_X + SERVER_X) // 2}" y="{y + LINE}" '
                f'text-anchor="middle">⋯ {gap:.1f} s later ⋯</text>'
            )
            y += 2 * LINE
        elif gap > 0:
            y += int(min(24, 6 * math.log10(1 + gap * 1000)))
        decoded = _decoded_lines(arrow)
        height = max(ROW, len(decoded) * LINE + 8)
        arrow_y = y + 2 * LINE + 7
        rows.append((arrow_y, y + height))
        x1, x2 = (CLIENT_X, SERVER_X) if arrow.from_client else (SERVER_X, CLIENT_X)
        ms = (arrow.packet.time - t0) * 1000
        cls = "arrow " + ("c2s" if arrow.from_client else "s2c")
        if "R" in arrow.packet.flags:
            cls += " rst"
        elif arrow.packet.flags in ("S", "SA") or "F" in arrow.packet.flags:
            cls += " ctl"
        head = -8 if x2 < x1 else 8
        parts.append(
            f'<g class="{cls}" tabindex="0" data-detail="{_esc(arrow.detail)}">'
            f"<title>{_esc(arrow.detail)}</title>"
            f'<line x1="{x1}" y1="{arrow_y}" x2="{x2}" y2="{arrow_y + SLANT}"/>'
            f'<path d="M{x2} {arrow_y + SLANT} l{-head} -4 l0 8 z"/>'
            f'<text class="time" x="{TIME_X}" y="{arrow_y + 4}">{ms:.3f} ms</text>'
        )
        for i, line in enumerate(arrow.label):
            if line:
                parts.append(
                    f'<text class="label" x="{(CLIENT_X + SERVER_X) // 2}" '
                    f'y="{y + LINE * (i + 1)}" text-anchor="middle">{_esc(line)}</text>'
                )
        parts.append("</g>")
        for i, line in enumerate(decoded):
            parts.append(
                f'<text class="decoded" x="{DECODED_X}" y="{y + LINE * (i + 1)}">'
                f"{_esc(line)}</text>"
            )
        y += height
    for name, first, last in ladder.phases:
        top, bottom = rows[first][0] - LINE, rows[last][0] + SLANT
        parts.append(
            f'<rect class="phase {name}" x="{PHASE_X + 80}" y="{top}" width="5" '
            f'height="{max(4, bottom - top)}"><title>{name}</title></rect>'
            f'<text class="phase-name" x="{PHASE_X}" y="{top + LINE - 3}">{name}</text>'
        )
    height = y + LINE
    lifelines = "".join(
        f'<line class="lifeline" x1="{x}" y1="{top - 8}" x2="{x}" y2="{height}"/>'
        for x in (CLIENT_X, SERVER_X)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img">{lifelines}{"".join(parts)}</svg>'
    )


def _host_lines(role: str, end: tuple[str, int], names: dict[str, str]) -> list[str]:
    """A lifeline's label: its role, what we know of the host, its address and port."""
    known = [line for line in names.get(end[0], "").split("\n") if line][:5]
    lines = [role] if role and not known else []
    return [*lines, *(part for line in known for part in _wrap(line, 40, 2)), endpoint(*end)]


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
h2 { font-size: 1rem; margin: 1.6rem 0 .4rem; }
p.meta, p.legend { color: #555; margin: .2rem 0; }
.scroll { overflow-x: auto; border: 1px solid #ddd; border-radius: 4px; }
svg text { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
svg text.host { font-weight: 600; }
svg .lifeline { stroke: #888; stroke-dasharray: 4 3; }
svg .arrow line { stroke: #1f6feb; stroke-width: 1.6; }
svg .arrow path { fill: #1f6feb; }
svg .arrow.s2c line { stroke: #8250df; } svg .arrow.s2c path { fill: #8250df; }
svg .arrow.ctl line { stroke-width: 2.4; }
svg .arrow.rst line { stroke: #cf222e; } svg .arrow.rst path { fill: #cf222e; }
svg .arrow { cursor: pointer; }
svg .arrow:hover line, svg .arrow:focus line { stroke-width: 3.5; }
svg text.time { fill: #666; }
svg text.decoded { fill: #0a3069; }
svg text.gap { fill: #9a6700; }
svg .phase { fill: #bbb; } svg .phase.handshake { fill: #2da44e; }
svg .phase.exchange { fill: #1f6feb; } svg .phase.half-close { fill: #bf8700; }
svg .phase.close { fill: #6e7781; } svg .phase.reset { fill: #cf222e; }
svg text.phase-name { fill: #444; }
#detail { position: sticky; bottom: 0; background: #f6f8fa; border-top: 2px solid #1f6feb;
  white-space: pre-wrap; font: 12px ui-monospace, monospace; padding: .5rem; margin: 1rem 0 0;
  max-height: 40vh; overflow: auto; }
#detail:empty { display: none; }
"""

SCRIPT = """
document.addEventListener('click', function (event) {
  var arrow = event.target.closest && event.target.closest('g.arrow');
  if (arrow) { document.getElementById('detail').textContent = arrow.dataset.detail; }
});
document.addEventListener('keydown', function (event) {
  if (event.key === 'Enter' && document.activeElement.matches('g.arrow')) {
    document.getElementById('detail').textContent = document.activeElement.dataset.detail;
  }
});
"""


def page(packets: list[Packet], title: str, names: dict[str, str] | None = None) -> str:
    """The whole page: every conversation's ladder, self-contained."""
    names = names or {}
    found = ladders(packets)
    t0 = min((p.time for p in packets), default=0.0)
    sections = []
    for number, ladder in enumerate(found, 1):
        sections.append(
            f'<section class="conversation" id="c{number}"><h2>{number}. '
            f"{_esc(ladder.summary)}</h2>"
            f'<div class="scroll">{svg(ladder, names, t0)}</div></section>'
        )
    count = len(packets)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_esc(title)}</h1>"
        f'<p class="meta">{count} packets in {len(found)} conversations; time in ms since the '
        "first packet.</p>"
        '<p class="legend">Blue: client to server; purple: server to client; red: a reset; '
        "thick: SYN, SYN-ACK, FIN. Bars at the left: handshake, exchange, half-close, close. "
        "Hover an arrow for its packet, click it (or Tab to it and press Enter) to keep it "
        "below.</p>"
        + "".join(sections)
        + f'<pre id="detail" aria-live="polite"></pre><script>{SCRIPT}</script></body></html>\n'
    )


def render_file(path: Path, names: dict[str, str] | None = None, title: str = "") -> str:
    """A pcap or pcapng file's page."""
    return page(capture.read_frames(path.read_bytes()), title or f"Ladder: {path.name}", names)
