"""`make capture`: run the demo while tcpdump watches the server's network, save the capture for
Wireshark and as ladder diagrams for a browser, and print the conversation, exchange by exchange.

A stack of its own (a fresh compose project) comes up; a tools-image helper joins the server's
network namespace and captures on its interface to the lab network; the client runs the demo;
the capture goes to captures/demo-<timestamp>.pcapng, its ladders to demo-<timestamp>.html
(labtools.ladder); the stack is removed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import struct
import sys
from pathlib import Path

from lab import registry
from labstack import ROOT, ComposeStack, StackError, capture

from . import command, ladder
from .progress import Progress

NAMES = {(row.kind, row.default_port): row.name for row in registry.LISTENERS}


def shown(path: Path) -> str:
    """A path as the reader types it: from the repository's root when it is below it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def framed_fields(data: bytes) -> list[str]:
    """A framed request, field by field: the 2-byte length, the JSON header, the content."""
    if len(data) < 2:
        return ["(too short for a frame)"]
    (length,) = struct.unpack(">H", data[:2])
    header = data[2 : 2 + length]
    try:
        fields = json.loads(header)
    except ValueError:
        return [f"length prefix {data[:2].hex(' ')} = {length}, then bytes that are not JSON"]
    content = data[2 + length : 2 + length + int(fields.get("content-length", 0))]
    return [
        f"length prefix  {data[:2].hex(' ')}  = {length}: the JSON header's size in bytes",
        f"JSON header    {header.decode()}",
        f"content        {len(content)} B ({fields.get('content-type')}, "
        f"{fields.get('content-encoding')}): {content.decode(errors='replace')}",
    ]


def describe(conv: capture.Conversation) -> list[str]:
    name = NAMES.get((conv.proto, conv.server[1]), conv.proto.upper())
    client, server = endpoint(*conv.client), endpoint(*conv.server)
    lines = [f"{name}  IPv{conv.family}  {client} -> {server}"]
    if conv.proto == "udp":
        for side, arrow in (("client", "->"), ("server", "<-")):
            sizes = [len(p.payload) for p in conv.sent_by(side)]
            lines.append(f"  {len(sizes)} datagram(s) {arrow} {', '.join(f'{s} B' for s in sizes)}")
        return lines
    lines.append(f"  handshake  {' '.join(conv.handshake)}  (SYN from the client, SYN-ACK, ACK)")
    for side, arrow in (("client", "->"), ("server", "<-")):
        data = [p for p in conv.sent_by(side) if p.payload]
        lines.append(
            f"  data {arrow}    {len(conv.payload(side))} B in {len(data)} segment(s)"
            + (
                f" ({', '.join(str(len(p.payload)) for p in data[:6])}"
                f"{', ...' if len(data) > 6 else ''})"
                if data
                else ""
            )
        )
    first = conv.first_fin
    whys = {
        "client": "the client closed first: its FIN is the b'' the server's recv() returned",
        "server": "the server closed first (it speaks, then closes)",
    }
    why = whys.get(first or "", "no FIN seen")
    lines.append(f"  teardown   {why}")
    return lines


def host_names(stack: ComposeStack) -> dict[str, str]:
    """Labels for the ladders' lifelines: the server's container, hostname and addresses; any
    other address on the network is the demo's client (a one-off container, gone by now)."""
    server = stack.container("server")
    server.reload()
    label = "\n".join(
        (
            "server",
            f"container {server.name}",
            f"hostname {server.attrs['Config']['Hostname']}",
            stack.ip_of("server", 4),
            stack.ip_of("server", 6),
        )
    )
    return {stack.ip_of("server", 4): label, stack.ip_of("server", 6): label}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make capture", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "captures", help="where to write (captures/)"
    )
    out_dir = parser.parse_args(argv).out
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    bar = Progress("make capture", 3, expected_step_s=10)
    try:
        bar.step("starting the stack (server healthy)")
        with ComposeStack(project=f"labcapture-{stamp}") as stack:
            bar.step("the demo under tcpdump")
            bar.say(
                f"capture: tcpdump in the server's network namespace "
                f"({stack.ip_of('server', 4)}, {stack.ip_of('server', 6)})"
            )
            with stack.capture() as captured:
                demo = stack.run_client("demo", json_output=False)
            bar.say(demo.stdout.rstrip())
            names = host_names(stack)
            bar.step("removing the stack; writing the capture, its decoding and ladders")
    except StackError as exc:
        print(f"make capture: error: {exc}", file=sys.stderr)
        return 1
    path = out_dir / f"demo-{stamp}.pcapng"
    path.write_bytes(capture.to_pcapng(captured["pcap"]))
    packets = capture.read(captured["pcap"])
    page = path.with_suffix(".html")
    page.write_text(
        ladder.page(capture.read_frames(captured["pcap"]), f"The demo on the wire ({stamp})", names)
    )
    bar.finish("captured")
    print(
        f"\n== the conversation on the wire: {len(packets)} packets, saved to "
        f"{shown(path)} (open it in Wireshark); drawn as ladders in "
        f"{shown(page)} (open it in a browser) =="
    )
    shown_frame = False
    for conv in capture.conversations(packets):
        print("\n".join(describe(conv)))
        if conv.server[1] == registry.default_port("app") and not shown_frame:
            print("  the request, field by field:")
            print("\n".join(f"    {line}" for line in framed_fields(conv.payload("client"))))
            shown_frame = True
    return demo.exit_code


if __name__ == "__main__":
    sys.exit(command.run(main))
