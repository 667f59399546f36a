"""Packet captures as plain records: what tcpdump saw, for ``make capture``, the capture tests
and the cluster's VXLAN test (decoding by dpkt).

    packets = read(pcap_bytes)              # IPv4/IPv6 TCP and UDP, VXLAN opened up
    syns = [p for p in packets if p.flags == "S"]
    Path("demo.pcapng").write_bytes(to_pcapng(pcap_bytes))   # for Wireshark
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dpkt

VXLAN_PORT = 4789
SIDES = ("client", "server")
VXLAN_HEADER = 8
TCP_FLAGS = (
    (dpkt.tcp.TH_SYN, "S"),
    (dpkt.tcp.TH_FIN, "F"),
    (dpkt.tcp.TH_RST, "R"),
    (dpkt.tcp.TH_PUSH, "P"),
    (dpkt.tcp.TH_ACK, "A"),
)


@dataclass(frozen=True)
class Packet:
    """One TCP segment or UDP datagram; ``outer`` is the VXLAN datagram that carried it."""

    time: float
    proto: str  # "tcp" or "udp"
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes
    flags: str = ""  # TCP: "S", "SA", "A", "PA", "FA", "R"...
    outer: Packet | None = None
    seq: int = 0  # TCP: absolute sequence and acknowledgement numbers
    ack: int = 0
    info: str = ""  # a frame that is neither TCP nor UDP: what it is (ARP, ICMPv6, ...)

    @property
    def family(self) -> int:
        return 6 if ":" in self.src else 4

    def between(self, a: tuple[str, int], b: tuple[str, int]) -> bool:
        """Is this packet on the conversation between ``a`` and ``b`` (either direction)?"""
        ends = {(self.src, self.sport), (self.dst, self.dport)}
        return ends == {a, b}

    def describe(self) -> str:
        where = f"{_endpoint(self.src, self.sport)} > {_endpoint(self.dst, self.dport)}"
        what = f"[{self.flags}]" if self.proto == "tcp" else "UDP"
        return f"{where} {what} {len(self.payload)} B"


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _address(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def _flags(tcp: dpkt.tcp.TCP) -> str:
    return "".join(name for bit, name in TCP_FLAGS if tcp.flags & bit)


def _decode(frame: dpkt.Packet, when: float, outer: Packet | None = None) -> list[Packet]:
    ip = frame.data if not isinstance(frame, dpkt.ip.IP | dpkt.ip6.IP6) else frame
    if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
        return []
    src, dst, layer4 = _address(ip.src), _address(ip.dst), ip.data
    if isinstance(layer4, dpkt.tcp.TCP):
        return [
            Packet(
                when,
                "tcp",
                src,
                dst,
                layer4.sport,
                layer4.dport,
                bytes(layer4.data),
                _flags(layer4),
                outer,
                layer4.seq,
                layer4.ack,
            )
        ]
    if isinstance(layer4, dpkt.udp.UDP):
        datagram = Packet(
            when, "udp", src, dst, layer4.sport, layer4.dport, bytes(layer4.data), outer=outer
        )
        if layer4.dport == VXLAN_PORT and outer is None:
            inner = dpkt.ethernet.Ethernet(bytes(layer4.data)[VXLAN_HEADER:])
            return [datagram, *_decode(inner, when, datagram)]
        return [datagram]
    return []


LINKS = {
    dpkt.pcap.DLT_EN10MB: dpkt.ethernet.Ethernet,
    dpkt.pcap.DLT_LINUX_SLL: dpkt.sll.SLL,
    dpkt.pcap.DLT_LINUX_SLL2: dpkt.sll2.SLL2,
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def _frames(data: bytes) -> tuple[type[dpkt.Packet], list[tuple[float, bytes]]]:
    """The link layer and every (time, frame) of a pcap or pcapng file."""
    opened = io.BytesIO(data)
    try:
        reader = (
            dpkt.pcapng.Reader(opened) if data[:4] == PCAPNG_MAGIC else dpkt.pcap.Reader(opened)
        )
        frames = list(reader)
    except (ValueError, dpkt.Error) as exc:
        raise ValueError(f"not a pcap or pcapng file ({exc})") from None
    link = LINKS.get(reader.datalink())
    if link is None:
        raise ValueError(f"unexpected link type {reader.datalink()} in the capture")
    return link, frames


def read(pcap: bytes) -> list[Packet]:
    """Every TCP and UDP packet in a pcap (or pcapng) file (Ethernet, or Linux cooked from
    ``-i any``); a VXLAN datagram gives itself and the packet it carries."""
    link, frames = _frames(pcap)
    packets = []
    for when, raw in frames:
        packets += _decode(link(raw), when)
    return packets


def read_frames(data: bytes) -> list[Packet]:
    """One record for each frame in the file, whatever it is: its TCP segment or UDP datagram
    (the one inside, for VXLAN; ``outer`` is the carrier), or, for anything else (ARP,
    ICMP...), a record of proto "other" between its addresses with ``info`` saying what."""
    link, frames = _frames(data)
    records = []
    for when, raw in frames:
        try:
            frame = link(raw)
            decoded = _decode(frame, when)
            records.append(decoded[-1] if decoded else _other(frame, when))
        except (dpkt.Error, ValueError, IndexError) as exc:  # a truncated or mangled frame
            records.append(Packet(when, "other", "?", "?", 0, 0, b"", info=f"undecodable ({exc})"))
    return records


def _other(frame: dpkt.Packet, when: float) -> Packet:
    inner = frame.data
    if isinstance(inner, dpkt.ip.IP | dpkt.ip6.IP6):
        kind = type(inner.data).__name__ if not isinstance(inner.data, bytes) else "IP"
        return Packet(when, "other", _address(inner.src), _address(inner.dst), 0, 0, b"", info=kind)
    src = getattr(frame, "src", b"")
    dst = getattr(frame, "dst", b"")
    kind = type(inner).__name__ if not isinstance(inner, bytes) else "frame"
    return Packet(when, "other", _mac(src), _mac(dst), 0, 0, b"", info=kind)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw) if len(raw) == 6 else "?"


def to_pcapng(pcap: bytes) -> bytes:
    """The same capture as pcapng, the format Wireshark saves by default."""
    reader = dpkt.pcap.Reader(io.BytesIO(pcap))
    out = io.BytesIO()
    writer = dpkt.pcapng.Writer(out, snaplen=reader.snaplen, linktype=reader.datalink())
    for when, raw in reader:
        writer.writepkt(raw, ts=when)
    return out.getvalue()


@dataclass
class Conversation:
    """One TCP connection, or one UDP flow, as the capture saw it: who opened it, how many
    payload bytes each way, and who sent the first FIN."""

    proto: str
    client: tuple[str, int]
    server: tuple[str, int]
    packets: list[Packet]

    @property
    def family(self) -> int:
        return 6 if ":" in self.client[0] else 4

    def sent_by(self, side: str) -> list[Packet]:
        src = self.client if side == "client" else self.server
        return [p for p in self.packets if (p.src, p.sport) == src]

    def payload(self, side: str) -> bytes:
        """The bytes one side sent: TCP's stream by sequence number (a retransmitted segment
        counts once), UDP's datagrams in capture order."""
        if self.proto == "tcp":
            return stream(self.sent_by(side))
        return b"".join(p.payload for p in self.sent_by(side))

    @property
    def handshake(self) -> list[str]:
        """The first three segments' flags with their direction: ["S>", "SA<", "A>"]."""
        return [
            f"{p.flags}{'>' if (p.src, p.sport) == self.client else '<'}" for p in self.packets[:3]
        ]

    @property
    def first_fin(self) -> str | None:
        for p in self.packets:
            if "F" in p.flags:
                return "client" if (p.src, p.sport) == self.client else "server"
        return None

    def closed_by(self, side: str) -> bool:
        """Has ``side`` sent a FIN?"""
        return any("F" in p.flags for p in self.sent_by(side))


def _offset_from(first: int) -> Callable[[Packet], int]:
    """A segment's sequence number relative to ``first``, modulo 2**32 and signed, so that a
    connection that wraps the sequence space, or a segment seen before an earlier one, is read
    right."""
    half = 1 << 31
    return lambda p: (p.seq - first + half) % (1 << 32) - half


def stream(segments: list[Packet]) -> bytes:
    """The bytes TCP segments from one sender carried, each byte once and in sequence order.

    A segment the network lost is sent again, and a capture on the path sees both copies (the
    cluster's overlay drops one now and then under load); segments can also arrive out of order.
    A gap the capture missed stays a gap: the stream is then shorter than what was sent, which
    is what a test should see.
    """
    data = [p for p in segments if p.payload]
    if not data:
        return b""
    offset = _offset_from(data[0].seq)
    ordered = sorted(data, key=offset)
    out = bytearray()
    end = offset(ordered[0])
    for p in ordered:
        at = offset(p)
        end = max(end, at)  # past a gap the capture missed, the gap stays one
        fresh = p.payload[end - at :]
        out += fresh
        end += len(fresh)
    return bytes(out)


def new_bytes(segments: list[Packet]) -> Iterator[tuple[int, bytes]]:
    """In capture order, each data segment's index in ``segments`` and the bytes it adds to the
    stream (none for a copy of bytes already seen). Stops before a segment that starts past the
    end of what was seen: out of order, or after bytes the capture missed."""
    data = [(index, p) for index, p in enumerate(segments) if p.payload]
    if not data:
        return
    offset = _offset_from(data[0][1].seq)
    end = 0
    for index, p in data:
        at = offset(p)
        if at > end:
            return
        fresh = p.payload[end - at :]
        end += len(fresh)
        yield index, fresh


def lacking_exchanges(convs: list[Conversation], exchanges: list[dict[str, Any]]) -> list[str]:
    """What a capture still lacks of the exchanges a client reported (their JSON lines'
    endpoints: ``local_ip``, ``local_port``, ``peer_port``), one line for each exchange not there
    whole; none when it holds them all. A TCP connection whole is closed both ways (a FIN from
    each side); a UDP flow, a datagram back for each one out."""
    lacking = []
    for exchange in exchanges:
        mine = (exchange["local_ip"], exchange["local_port"])
        name = f"{exchange.get('command', 'exchange')} from {_endpoint(*mine)}"
        found = [
            conv
            for conv in convs
            if conv.client == mine and conv.server[1] == exchange.get("peer_port", conv.server[1])
        ]
        if not found:
            lacking.append(f"{name}: not on the wire")
            continue
        conv = found[-1]
        if conv.proto == "tcp":
            unclosed = [side for side in SIDES if not conv.closed_by(side)]
            if unclosed:
                lacking.append(f"{name}: no FIN from the {' or the '.join(unclosed)}")
        else:
            out, back = len(conv.sent_by("client")), len(conv.sent_by("server"))
            if back < out:
                lacking.append(f"{name}: {out} datagrams out, {back} back")
    return lacking


def conversations(packets: list[Packet]) -> list[Conversation]:
    """TCP connections (their client is the side that sent the SYN) and UDP flows (their client
    is the side that sent first), in the order they began."""
    found: dict[frozenset, Conversation] = {}
    for p in packets:
        if p.outer is not None:
            continue
        key = frozenset({(p.proto, p.src, p.sport), (p.proto, p.dst, p.dport)})
        if key not in found:
            if p.proto == "tcp" and p.flags != "S":
                continue  # began before the capture did
            found[key] = Conversation(p.proto, (p.src, p.sport), (p.dst, p.dport), [])
        found[key].packets.append(p)
    return list(found.values())
