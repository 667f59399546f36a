"""The simple listeners' protocols: TCP echo, the greeting line, and UDP echo."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections import Counter, OrderedDict
from typing import Any

from lab.greeting import greeting_line
from lab.netinfo import Peer

from .base import DatagramProtocol, Protocol, Transport
from .limits import EchoLoopGuard, SourceBuckets

log = logging.getLogger("server")


class EchoProtocol(Protocol):
    """Echoes every byte back until the peer closes its side; then finishes sending and closes.

    A peer that does not read makes the write buffer fill: the transport then pauses reading
    (``pause_writing``), so it cannot make us hold more than the write high-water mark.
    ``quiet_s``: at a shutdown, an echo stream that moved bytes within this long is in the
    middle of an exchange and may finish (the server passes its shutdown grace period)."""

    name = "tcp-echo"
    __slots__ = ("half_closed", "quiet_s", "started")  # one per connection: no __dict__

    def __init__(self, quiet_s: float = 5.0) -> None:
        self.quiet_s = quiet_s
        self.started = self.half_closed = False

    def data_received(self, data: memoryview) -> None:
        self.started = True
        self.transport.write(data)  # within what the read was charged for: never refused

    def eof_received(self) -> None:
        self.half_closed = True
        super().eof_received()

    def in_exchange(self, now: float) -> bool:
        return self.started and not self.half_closed and self.transport.idle_s() < self.quiet_s


class GreetingProtocol(Protocol):
    """Sends one line naming this server and the client's address as seen here, then closes.

    Anything the client types is ignored, so ``nc`` and ``telnet`` both work.
    """

    name = "greeting"
    refusal = b"Sorry, the server is busy; try again later.\r\n"
    speaks_first = True
    hostname = socket.gethostname()

    def connection_made(self, transport: Transport) -> None:
        super().connection_made(transport)
        transport.write(
            greeting_line(self.hostname, str(transport.local), str(transport.peer)).encode()
        )
        transport.close("greeted")

    def data_received(self, data: memoryview) -> None:
        pass


class UdpEchoProtocol(DatagramProtocol):
    """Echoes each datagram to its sender, unless it must not (each drop is counted):

    - oversized (over ``max_bytes``);
    - from a source that cannot want an echo: a port below 1024 (as BSD inetd's echo does), our
      own echo port (ourselves, or another lab server), or a broadcast, multicast or unspecified
      address;
    - the same payload again and again from one source: another echo service answering us, on
      whatever port (``limits.EchoLoopGuard``), so a forged datagram cannot start a ping-pong;
    - over the source's rate (``rate_per_source``, per address or IPv6 /64), so we cannot be
      used as a reflector.

    An echo is never larger than the datagram it answers: no amplification.
    """

    name = "udp-echo"
    SEEN_PEERS_MAX = 1024  # new peers are logged once; remember this many (and verdicts)

    def __init__(self, max_bytes: int, rate_per_source: int) -> None:
        self.max_bytes = max_bytes
        self.seen: OrderedDict[Peer, None] = OrderedDict()
        self.verdicts: OrderedDict[str, str | None] = OrderedDict()  # source ip -> why refused
        self.buckets = SourceBuckets(rate_per_source)
        self.loops = EchoLoopGuard()
        self.echoed = 0
        self.dropped: Counter[str] = Counter()

    def datagram_received(self, data: memoryview, peer: Peer) -> None:
        transport = self.transport
        if peer not in self.seen:
            self._note_peer(peer, len(data))
        why = self._refuse(transport.port, data, peer, transport.time())
        if why is not None:
            self.dropped[why] += 1
            transport.warn(
                f"udp-echo drop ({why})",
                "udp-echo dropped a datagram from peer=%s (%s; %d so far)",
                peer,
                why,
                self.dropped[why],
                peer=str(peer),
                reason=why,
            )
        elif transport.sendto(data, peer):
            self.echoed += 1

    def _refuse(self, our_port: int, data: memoryview, peer: Peer, now: float) -> str | None:
        if len(data) > self.max_bytes:
            return f"over {self.max_bytes} bytes"
        if peer.port < 1024:
            return "source port below 1024"
        if peer.port == our_port:
            return "source is an echo port (ours or another echo service's)"
        verdict = self.verdicts.get(peer.ip, _UNKNOWN)
        if verdict is _UNKNOWN:
            verdict = self.verdicts[peer.ip] = _bad_source(peer.ip)
            if len(self.verdicts) > self.SEEN_PEERS_MAX:
                self.verdicts.popitem(last=False)
        if verdict is not None:
            return verdict  # type: ignore[return-value]
        if self.loops.looping(peer, data, now):
            return "the same payload again and again: an echo loop"
        if not self.buckets.allow(peer.key, now):
            return "over the rate per source"
        return None

    def _note_peer(self, peer: Peer, size: int) -> None:
        self.seen[peer] = None
        if len(self.seen) > self.SEEN_PEERS_MAX:
            self.seen.popitem(last=False)
        if not peer.loopback:
            log.info("udp-echo first datagram from peer=%s (%d bytes)", peer, size)

    def stats(self) -> dict[str, Any]:
        return {"echoed": self.echoed, "dropped": self.dropped}


_UNKNOWN = object()


def _bad_source(ip: str) -> str | None:
    """Why no echo may go to this address (one that can only be a forgery), or None."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "unparsable source address"
    if addr.is_multicast or addr.is_unspecified or str(addr) == "255.255.255.255":
        return "broadcast, multicast or unspecified source"
    return None
