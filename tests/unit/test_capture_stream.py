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
from labstack.lifecycle import tcpdump_command, tcpdump_dropped
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
    for side in filter(None, fins.split(",")):
        packets.append(
            packet(client, SERVER, "FA") if side == "client" else packet(SERVER, client, "FA")
        )
    return packets


def udp_flow(client: tuple[str, int], out: int, back: int) -> list[capture.Packet]:
    return [packet(client, SERVER, "", "udp")] * out + [packet(SERVER, client, "", "udp")] * back


REPORTED = [
    {"command": command, "local_ip": CLIENT[0], "local_port": port, "peer_port": SERVER[1]}
    for command, port in (("tcp", 40000), ("udp", 40001), ("tcp", 40002))
]


def reported_exchanges(
    last: bool = True, last_fins: str = "client,server", back: int = 3
) -> list[capture.Packet]:
    """A TCP connection, a UDP flow of 3 datagrams, and a last TCP connection, as captured."""
    packets = [*tcp_connection((CLIENT[0], 40000)), *udp_flow((CLIENT[0], 40001), 3, back)]
    return packets + (tcp_connection((CLIENT[0], 40002), last_fins) if last else [])


@pytest.mark.parametrize(
    ("captured", "lacking"),
    [
        ({}, []),
        ({"last": False}, ["tcp from 10.0.0.2:40002: not on the wire"]),
        ({"last_fins": "client"}, ["tcp from 10.0.0.2:40002: no FIN from the server"]),
        ({"last_fins": ""}, ["tcp from 10.0.0.2:40002: no FIN from the client or the server"]),
        ({"back": 2}, ["udp from 10.0.0.2:40001: 3 datagrams out, 2 back"]),
    ],
    ids=[
        "whole",
        "a connection missing",
        "a FIN missing",
        "both FINs missing",
        "a datagram missing",
    ],
)
def test_a_capture_holds_the_exchanges_a_client_reported_only_when_whole(
    captured: dict[str, Any], lacking: list[str]
) -> None:
    convs = capture.conversations(reported_exchanges(**captured))
    assert capture.lacking_exchanges(convs, REPORTED) == lacking


def test_an_exchange_is_matched_by_its_server_port_too() -> None:
    """Linux may give two connections to different servers the same local port."""
    convs = capture.conversations(tcp_connection(CLIENT, fins="client"))
    elsewhere = {**REPORTED[0], "peer_port": SERVER[1] + 1}
    assert capture.lacking_exchanges(convs, [elsewhere]) == [
        "tcp from 10.0.0.2:40000: not on the wire"
    ]


class FakeCapture(LiveCapture):
    """A LiveCapture whose tcpdump has written more at each look (no Docker)."""

    def __init__(self, looks: list[bytes]) -> None:
        super().__init__(helper=None)
        self.looks = looks

    def so_far(self) -> bytes:
        return self.looks.pop(0) if len(self.looks) > 1 else self.looks[0]

    def dropped(self) -> str | None:
        return None


def test_waiting_on_a_live_capture_reads_it_until_it_holds_what_is_asked() -> None:
    capture_ = FakeCapture([b"", b"not yet", b"there"])
    capture_.wait_until("'there'", lambda pcap: [] if pcap == b"there" else ["no"], within_s=5)
    assert capture_.looks == [b"there"]
    gave_up = r"the capture to show 'never'.*lacks 2: a; b \(tcpdump dropped nothing\)"
    with pytest.raises(StackError, match=gave_up):
        FakeCapture([b"there"]).wait_until("'never'", lambda pcap: ["a", "b"], within_s=0.5)


# -- what tcpdump says it lost ---------------------------------------------------------------
STOPPED = (
    "tcpdump: listening on eth0\n"
    "40 packets captured\n43 packets received by filter\n{} packets dropped by kernel\n"
)


def test_tcpdump_saying_it_dropped_packets_is_a_capture_not_whole() -> None:
    assert tcpdump_dropped(STOPPED.format(0)) is None
    assert (
        tcpdump_dropped(STOPPED.format(3)) == "tcpdump dropped 3 packets: the capture is not whole"
    )
    # on SIGUSR1 it prints one line, and the last counts are what it has lost so far
    so_far = (
        "tcpdump: 9 packets captured, 9 packets received by filter, 1 packet dropped by kernel\n"
    )
    assert tcpdump_dropped(STOPPED.format(0) + so_far) == (
        "tcpdump dropped 1 packets: the capture is not whole"
    )
    assert "did not say" in str(tcpdump_dropped("tcpdump: listening on eth0\n"))


def test_tcpdump_is_given_a_ring_that_holds_more_than_the_default_eight_packets() -> None:
    command = tcpdump_command("eth0", "tcp", "capture.pcap")
    assert int(command[command.index("-B") + 1]) >= 32 << 10  # KiB: 128 packets of 256 KiB
