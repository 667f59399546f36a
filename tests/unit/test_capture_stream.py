"""How a capture's TCP segments become the stream a side sent: each byte once, in sequence order,
whatever the network did to the segments on the way (the cluster's overlay resends some)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest
from lab import framing
from labstack import capture
from labstack.clients import LiveCapture
from labstack.stack import StackError
from labtools import ladder

CLIENT, SERVER = ("10.0.0.2", 40000), ("10.0.0.3", 7)


def segments(data: bytes, isn: int, size: int) -> list[capture.Packet]:
    return [
        capture.Packet(
            time=float(i),
            proto="tcp",
            src=CLIENT[0],
            dst=SERVER[0],
            sport=CLIENT[1],
            dport=SERVER[1],
            payload=data[i : i + size],
            flags="PA",
            seq=(isn + i) % (1 << 32),
        )
        for i in range(0, len(data), size)
    ]


DATA = os.urandom(10_000)


def test_in_order_segments_are_joined() -> None:
    assert capture.stream(segments(DATA, 1000, 1448)) == DATA


def test_a_resent_segment_counts_once() -> None:
    sent = segments(DATA, 1000, 1448)
    resent = [*sent[:3], sent[1], *sent[3:]]  # the second segment seen twice
    assert sum(len(p.payload) for p in resent) == len(DATA) + 1448
    assert capture.stream(resent) == DATA


def test_a_resend_that_splits_differently_and_out_of_order_segments() -> None:
    sent = segments(DATA, 1000, 1000)
    # a retransmission that covers the end of one segment and the start of the next
    overlap = replace(sent[2], payload=DATA[2500:3500], seq=3500)
    shuffled = [sent[0], sent[3], sent[1], overlap, sent[2], *sent[4:]]
    assert capture.stream(shuffled) == DATA


@pytest.mark.parametrize("isn", [(1 << 32) - 3000, (1 << 32) - 1])
def test_the_sequence_space_wraps(isn: int) -> None:
    sent = segments(DATA, isn, 1448)
    assert any(p.seq < isn for p in sent)  # the test does wrap
    assert capture.stream(sent[::-1]) == DATA


def test_a_segment_the_capture_missed_leaves_the_stream_short() -> None:
    sent = segments(DATA, 1000, 1000)
    assert capture.stream(sent[:4] + sent[5:]) == DATA[:4000] + DATA[5000:]


def test_the_conversation_reads_tcp_by_sequence_and_udp_in_order() -> None:
    sent = segments(DATA, 1000, 1448)
    tcp = capture.Conversation("tcp", CLIENT, SERVER, sent + sent[2:4])
    assert tcp.payload("client") == DATA and tcp.payload("server") == b""
    datagrams = [replace(p, proto="udp", seq=0) for p in sent[:2]]
    udp = capture.Conversation("udp", CLIENT, SERVER, datagrams * 2)
    assert udp.payload("client") == DATA[:2896] * 2


def test_new_bytes_gives_each_byte_once_in_capture_order_and_stops_at_a_gap() -> None:
    sent = segments(DATA, 1000, 1000)
    seen = [sent[0], sent[1], sent[1], sent[2], sent[4], sent[3]]
    added = list(capture.new_bytes(seen))
    assert added == [(0, DATA[:1000]), (1, DATA[1000:2000]), (2, b""), (3, DATA[2000:3000])]


def test_the_ladder_decodes_a_resent_request_once() -> None:
    wire = b"".join(framing.encode_json({"action": "search", "value": str(i)}) for i in range(3))
    sent = segments(wire, 5000, 40)
    # the third segment resent after the fourth had gone out
    messages = ladder._decode_messages([*sent[:4], sent[2], *sent[4:]])
    assert sum(len(found) for found in messages.values()) == 3


# -- a capture that holds a client's exchanges whole ------------------------------------------
def packet(
    src: tuple[str, int], dst: tuple[str, int], flags: str, proto: str = "tcp"
) -> capture.Packet:
    return capture.Packet(0.0, proto, src[0], dst[0], src[1], dst[1], b"", flags=flags)


def tcp_connection(client: tuple[str, int], fins: str = "client,server") -> list[capture.Packet]:
    packets = [
        packet(client, SERVER, "S"),
        packet(SERVER, client, "SA"),
        packet(client, SERVER, "A"),
    ]
    for side in fins.split(","):
        packets.append(
            packet(client, SERVER, "FA") if side == "client" else packet(SERVER, client, "FA")
        )
    return packets


def udp_flow(client: tuple[str, int], out: int, back: int) -> list[capture.Packet]:
    return [packet(client, SERVER, "", "udp")] * out + [packet(SERVER, client, "", "udp")] * back


REPORTED = [{"local_ip": CLIENT[0], "local_port": port} for port in (40000, 40001, 40002)]


def reported_exchanges(
    last: bool = True, last_fins: str = "client,server", back: int = 3
) -> list[capture.Packet]:
    """A TCP connection, a UDP flow of 3 datagrams, and a last TCP connection, as captured."""
    packets = [*tcp_connection((CLIENT[0], 40000)), *udp_flow((CLIENT[0], 40001), 3, back)]
    return packets + (tcp_connection((CLIENT[0], 40002), last_fins) if last else [])


@pytest.mark.parametrize(
    ("captured", "whole"),
    [
        ({}, True),
        ({"last": False}, False),  # the last connection not read yet
        ({"last_fins": "client"}, False),  # its server's FIN not read yet
        ({"back": 2}, False),  # a datagram back not read yet
    ],
    ids=["whole", "a connection missing", "a FIN missing", "a datagram missing"],
)
def test_a_capture_holds_the_exchanges_a_client_reported_only_when_whole(
    captured: dict[str, Any], whole: bool
) -> None:
    convs = capture.conversations(reported_exchanges(**captured))
    assert capture.holds_exchanges(convs, REPORTED) is whole


class FakeCapture(LiveCapture):
    """A LiveCapture whose tcpdump has written more at each look (no Docker)."""

    def __init__(self, looks: list[bytes]) -> None:
        super().__init__(helper=None)
        self.looks = looks

    def so_far(self) -> bytes:
        return self.looks.pop(0) if len(self.looks) > 1 else self.looks[0]


def test_waiting_on_a_live_capture_reads_it_until_it_holds_what_is_asked() -> None:
    capture_ = FakeCapture([b"", b"not yet", b"there"])
    capture_.wait_until("'there'", lambda pcap: pcap == b"there", within_s=5)
    assert capture_.looks == [b"there"]
    with pytest.raises(StackError, match="the capture to show 'never'"):
        FakeCapture([b"there"]).wait_until("'never'", lambda pcap: False, within_s=0.5)
