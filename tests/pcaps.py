"""Captures made to order (dpkt): a framed request and its reply over TCP with every phase, a UDP
datagram, an ARP frame, and a pause of seconds, so that the ladder's every branch has input
whose right drawing is known without a network."""

from __future__ import annotations

import io
import socket

import dpkt
from lab import framing

A, S, F, P = dpkt.tcp.TH_ACK, dpkt.tcp.TH_SYN, dpkt.tcp.TH_FIN, dpkt.tcp.TH_PUSH
CLIENT, SERVER = ("10.0.0.2", 40000), ("10.0.0.3", 65433)
REQUEST = framing.encode_json({"action": "search", "value": "ring"})
REPLY = framing.encode_json({"result": "In the caves beneath the Misty Mountains."})


def _ip(src: str, dst: str, layer4: dpkt.Packet, proto: int) -> bytes:
    ip = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, data=layer4, ttl=64
    )
    ip.len = len(ip)
    frame = dpkt.ethernet.Ethernet(
        src=b"\x02\x00\x00\x00\x00\x02",
        dst=b"\x02\x00\x00\x00\x00\x03",
        type=dpkt.ethernet.ETH_TYPE_IP,
        data=ip,
    )
    return bytes(frame)


def tcp(
    src: tuple[str, int], dst: tuple[str, int], flags: int, seq: int, ack: int, data: bytes = b""
) -> bytes:
    segment = dpkt.tcp.TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack, data=data)
    return _ip(src[0], dst[0], segment, dpkt.ip.IP_PROTO_TCP)


def udp(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> bytes:
    datagram = dpkt.udp.UDP(sport=src[1], dport=dst[1], data=data)
    datagram.ulen = len(datagram)
    return _ip(src[0], dst[0], datagram, dpkt.ip.IP_PROTO_UDP)


def arp() -> bytes:
    frame = dpkt.ethernet.Ethernet(
        src=b"\x02\x00\x00\x00\x00\x02",
        dst=b"\xff" * 6,
        type=dpkt.ethernet.ETH_TYPE_ARP,
        data=dpkt.arp.ARP(),
    )
    return bytes(frame)


def conversation(gap_s: float = 2.5) -> list[tuple[float, bytes]]:
    """An app exchange (the request split in two segments), the client's FIN first and, after
    ``gap_s`` of silence, the server's; then a UDP datagram and its echo, and an ARP frame."""
    c, s = 1000, 5000  # initial sequence numbers
    t = 100.0
    half = len(REQUEST) // 2
    frames = [
        (t, tcp(CLIENT, SERVER, S, c, 0)),
        (t + 0.0001, tcp(SERVER, CLIENT, S | A, s, c + 1)),
        (t + 0.0002, tcp(CLIENT, SERVER, A, c + 1, s + 1)),
        (t + 0.0010, tcp(CLIENT, SERVER, P | A, c + 1, s + 1, REQUEST[:half])),
        (t + 0.0020, tcp(CLIENT, SERVER, P | A, c + 1 + half, s + 1, REQUEST[half:])),
        (t + 0.0030, tcp(SERVER, CLIENT, P | A, s + 1, c + 1 + len(REQUEST), REPLY)),
        (t + 0.0040, tcp(CLIENT, SERVER, F | A, c + 1 + len(REQUEST), s + 1 + len(REPLY))),
        (t + 0.0041, tcp(SERVER, CLIENT, A, s + 1 + len(REPLY), c + 2 + len(REQUEST))),
        (t + gap_s, tcp(SERVER, CLIENT, F | A, s + 1 + len(REPLY), c + 2 + len(REQUEST))),
        (t + gap_s + 0.0001, tcp(CLIENT, SERVER, A, c + 2 + len(REQUEST), s + 2 + len(REPLY))),
        (t + gap_s + 0.1, udp(("10.0.0.2", 50000), ("10.0.0.3", 65432), b"a datagram")),
        (t + gap_s + 0.1002, udp(("10.0.0.3", 65432), ("10.0.0.2", 50000), b"a datagram")),
        (t + gap_s + 0.2, arp()),
    ]
    return frames


def pcap(frames: list[tuple[float, bytes]]) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=dpkt.pcap.DLT_EN10MB)
    for when, raw in frames:
        writer.writepkt(raw, ts=when)
    return out.getvalue()
