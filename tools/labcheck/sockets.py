"""A network namespace's own socket table (/proc/net/tcp, tcp6, udp, udp6), as the kernel shows
it to a process inside: which ports a program listens on, and on which addresses. The kit reads
it from a helper in the program's namespace, so a server bound to loopback is seen as such
rather than guessed from a refused connection."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

LISTEN, UDP_BOUND = "0A", "07"


@dataclass(frozen=True)
class Bound:
    """One listening TCP socket, or one bound UDP socket."""

    kind: str  # tcp or udp
    address: str
    port: int
    ipv6: bool

    @property
    def loopback(self) -> bool:
        address = ipaddress.ip_address(self.address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped.is_loopback
        return address.is_loopback

    @property
    def wildcard(self) -> bool:
        return ipaddress.ip_address(self.address).is_unspecified

    def shown(self) -> str:
        return f"[{self.address}]:{self.port}" if self.ipv6 else f"{self.address}:{self.port}"


def _address(hexed: str) -> str:
    raw = bytes.fromhex(hexed)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    # IPv6: four 32-bit words, each in the host's (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def parse(tables: dict[str, str]) -> list[Bound]:
    """``tables``: the text of /proc/net/{tcp,tcp6,udp,udp6} (missing ones may be left out)."""
    found = []
    for name, text in tables.items():
        kind, ipv6 = name.rstrip("6"), name.endswith("6")
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4:
                continue
            local, state = fields[1], fields[3]
            if (kind == "tcp" and state != LISTEN) or (kind == "udp" and state != UDP_BOUND):
                continue
            host, port = local.split(":")
            found.append(Bound(kind, _address(host), int(port, 16), ipv6))
    return found


SETTLE_S = 1.0  # a socket table short of some ports must hold still this long to be read


class Settling:
    """When a program's socket table can be read for what it serves: once every port it may
    serve is open, or once some are and the set has held still for ``settle_s``. A program binds
    its ports one after another; read at the first, the lab's own server (four listeners) was
    once graded on three, under load."""

    def __init__(
        self,
        wanted: set[tuple[str, int]],
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wanted, self.settle_s, self.clock = wanted, settle_s, clock
        self.seen: set[tuple[str, int]] | None = None
        self.since = 0.0

    def wait_reason(self, open_ports: set[tuple[str, int]]) -> str | None:
        """Why not to read the table yet, or None to read it now."""
        served = self.wanted & open_ports
        if not served:
            return "none of its ports is open yet"
        if served == self.wanted:
            return None
        now = self.clock()
        if served != self.seen:
            self.seen, self.since = served, now
        if now - self.since < self.settle_s:
            return f"{len(served)} of its ports open, waiting {self.settle_s:g} s for more"
        return None
