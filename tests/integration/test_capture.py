"""What crossed the wire during the demo, as tcpdump saw it in the server's network namespace
(the capture `make capture` saves): handshakes, the echo's bytes, who closed first, datagrams."""

from __future__ import annotations

import pytest
from lab import registry
from labclient.demo import DEMO_ECHO_BYTES
from labstack import ComposeStack, capture


@pytest.fixture(scope="module")
def demo_on_the_wire(stack: ComposeStack) -> tuple[dict, list[capture.Conversation]]:
    result, pcap = stack.demo_on_the_wire()
    assert result.exit_code == 0, result
    return result.data, capture.conversations(capture.read(pcap))


@pytest.mark.parametrize("family", [4, 6])
def test_each_tcp_exchange_opens_with_a_syn_from_client_to_server(
    stack: ComposeStack, demo_on_the_wire: tuple, family: int
) -> None:
    demo, convs = demo_on_the_wire
    mine = [r for r in demo["exchanges"] if r["family"] == f"IPv{family}" and r["command"] != "udp"]
    tcp = [c for c in convs if c.proto == "tcp" and c.family == family]
    assert {c.server[1] for c in tcp} == {
        row.default_port for row in registry.LISTENERS if row.kind == "tcp"
    }
    for conv in tcp:
        assert conv.handshake == ["S>", "SA<", "A>"]  # SYN, SYN-ACK, ACK
        assert conv.server[0] == stack.ip_of("server", family)
    # each TCP exchange the client reported is one connection on the wire, port for port
    assert sorted(c.client for c in tcp) == sorted((r["local_ip"], r["local_port"]) for r in mine)


@pytest.mark.parametrize("family", [4, 6])
def test_the_echo_bytes_and_who_closed_first(demo_on_the_wire: tuple, family: int) -> None:
    _, convs = demo_on_the_wire
    (echo,) = [
        c
        for c in convs
        if c.proto == "tcp"
        and c.family == family
        and c.server[1] == registry.default_port("tcp-echo")
    ]
    assert len(echo.payload("client")) == len(echo.payload("server")) == DEMO_ECHO_BYTES
    assert echo.payload("client") == echo.payload("server")
    assert echo.first_fin == "client"  # its shutdown(SHUT_WR) is the server's b""
    (greeting,) = [
        c
        for c in convs
        if c.proto == "tcp"
        and c.family == family
        and c.server[1] == registry.default_port("greeting")
    ]
    assert greeting.payload("client") == b"" and greeting.payload("server").startswith(b"Hello")
    assert greeting.first_fin == "server"  # it speaks, then closes


@pytest.mark.parametrize("family", [4, 6])
def test_udp_datagrams_out_and_back(demo_on_the_wire: tuple, family: int) -> None:
    _, convs = demo_on_the_wire
    (udp,) = [c for c in convs if c.proto == "udp" and c.family == family]
    assert udp.server[1] == registry.default_port("udp-echo")
    out, back = udp.sent_by("client"), udp.sent_by("server")
    assert len(out) == len(back) == 3
    assert [p.payload for p in out] == [p.payload for p in back]
    assert {len(p.payload) for p in out} == {512}


def test_tcpdump_says_what_it_has_dropped_while_it_runs(stack: ComposeStack) -> None:
    """A capture that lacks something says whether tcpdump lost packets: it asks tcpdump for its
    counts (SIGUSR1), which must neither stop it nor cost what it has written."""
    with stack.capture(bpf="udp") as captured:
        assert stack.run_client("udp", "--count", "2").exit_code == 0
        assert captured.dropped() is None
        assert stack.run_client("udp", "--count", "1").exit_code == 0
    udp = [c for c in capture.conversations(capture.read(captured["pcap"])) if c.proto == "udp"]
    assert [len(c.sent_by("client")) for c in udp] == [2, 1]
