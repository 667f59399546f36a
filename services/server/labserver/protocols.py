"""The simple listeners' protocols: TCP echo, the greeting line, and UDP echo."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections import Counter, OrderedDict
from typing import Any

from lab.greeting import greeting_line
from lab.netinfo import endpoint, is_loopback, plain_ip

from .connection import Protocol
from .limits import SourceBuckets
from .listeners import DatagramProtocol, UdpListener

ECHO_QUIET_S = 0.25  # at shutdown, an echo peer silent this long is between exchanges

log = logging.getLogger("server")


class EchoProtocol(Protocol):
    """Echoes every byte back until the peer closes its side; then finishes sending and closes."""

    name = "tcp-echo"

    def data_received(self, data: memoryview) -> None:
        self.conn.write(data)

    def between_exchanges(self, now: float) -> bool:
        return now - self.conn.last_rx >= ECHO_QUIET_S


class GreetingProtocol(Protocol):
    """Sends one line naming this server and the client's address as seen here, then closes.

    Anything the client types is ignored, so ``nc`` and ``telnet`` both work.
    """

    name = "greeting"
    refusal = b"Sorry, the server is busy; try again later.\r\n"
    speaks_first = True
    hostname = socket.gethostname()

    def connection_made(self) -> None:
        conn = self.conn
        conn.write(greeting_line(self.hostname, endpoint(conn.local), endpoint(conn.peer))
                   .encode())
        conn.close_when_flushed("greeted")

    def data_received(self, data: memoryview) -> None:
        pass


_UNKNOWN = object()


class UdpEchoProtocol(DatagramProtocol):
    """Echoes each datagram to its sender, unless it must not (each drop is counted):

    - oversized (over ``max_bytes``);
    - from a source that cannot want an echo and may be another echo service, which would
      ping-pong with us forever: a port below 1024 (as BSD inetd's echo does), our own echo
      port (ourselves, or another lab server), or a broadcast, multicast or unspecified address;
    - over the source's rate (``rate_per_source``), so we cannot be used as a reflector.
    """

    name = "udp-echo"
    SEEN_PEERS_MAX = 1024  # new peers are logged once; remember this many (and verdicts)

    def __init__(self, listener: UdpListener, max_bytes: int, rate_per_source: int) -> None:
        super().__init__(listener)
        self.max_bytes = max_bytes
        self.seen: OrderedDict[tuple, None] = OrderedDict()
        self.verdicts: OrderedDict[str, str | None] = OrderedDict()  # source ip -> why refused
        self.buckets = SourceBuckets(rate_per_source)
        self.echoed = 0
        self.dropped: Counter[str] = Counter()

    def datagram_received(self, data: memoryview, peer: tuple) -> None:
        if peer not in self.seen:
            self._note_peer(peer, len(data))
        loop = self.listener.loop
        why = self._refuse(peer, len(data), loop.now)
        if why is not None:
            self.dropped[why] += 1
            loop.warnings.warn(f"udp-echo drop ({why})", loop.now,
                               "udp-echo dropped a datagram from peer=%s (%s; %d so far)",
                               endpoint(peer), why, self.dropped[why])
        elif self.sendto(data, peer):
            self.echoed += 1

    def _refuse(self, peer: tuple, size: int, now: float) -> str | None:
        if size > self.max_bytes:
            return f"over {self.max_bytes} bytes"
        port = peer[1]
        if port < 1024:
            return "source port below 1024"
        if port == self.listener.port:
            return "source is an echo port (ours or another echo service's)"
        ip = peer[0]
        verdict = self.verdicts.get(ip, _UNKNOWN)
        if verdict is _UNKNOWN:
            verdict = self.verdicts[ip] = _bad_source(ip)
            if len(self.verdicts) > self.SEEN_PEERS_MAX:
                self.verdicts.popitem(last=False)
        if verdict is not None:
            return verdict  # type: ignore[return-value]
        if not self.buckets.allow(ip, now):
            return "over the rate per source"
        return None

    def _note_peer(self, peer: tuple, size: int) -> None:
        self.seen[peer] = None
        if len(self.seen) > self.SEEN_PEERS_MAX:
            self.seen.popitem(last=False)
        if not is_loopback(peer[0]):
            log.info("udp-echo first datagram from peer=%s (%d bytes)", endpoint(peer), size)

    def stats(self) -> dict[str, Any]:
        return {"echoed": self.echoed, "dropped": self.dropped}


def _bad_source(ip: str) -> str | None:
    """Why no echo may go to this address (one that can only be a forgery), or None."""
    try:
        addr = ipaddress.ip_address(plain_ip(ip))
    except ValueError:
        return "unparsable source address"
    if addr.is_multicast or addr.is_unspecified or str(addr) == "255.255.255.255":
        return "broadcast, multicast or unspecified source"
    return None
