"""Addresses as people read them, and this host's own addresses.

A dual-stack IPv6 socket reports IPv4 peers as IPv4-mapped addresses
(``::ffff:172.20.0.3``); we always show and compare them as plain IPv4.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

_SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


def plain_ip(ip: str) -> str:
    """Normalise an address: IPv4-mapped IPv6 becomes IPv4, the scope id is dropped."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def family_name(ip: str) -> str:
    return "IPv6" if ":" in plain_ip(ip) else "IPv4"


def endpoint(sockaddr: tuple[Any, ...]) -> str:
    """``('::ffff:10.0.0.1', 80, 0, 0)`` -> ``10.0.0.1:80``; IPv6 gets brackets."""
    ip = plain_ip(sockaddr[0])
    return f"[{ip}]:{sockaddr[1]}" if ":" in ip else f"{ip}:{sockaddr[1]}"


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(plain_ip(ip)).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer's address, parsed once (at accept, or per new UDP source) and read many times.

    ``key`` is what per-peer limits count: the address itself for IPv4, the address's network
    for IPv6 (a /64 by default), because one IPv6 host holds a whole prefix and may connect from
    as many of its addresses as it likes."""

    ip: str  # plain: IPv4-mapped IPv6 shown as IPv4, no scope id
    port: int
    loopback: bool
    key: str
    # As the socket gave it (what a reply is sent to).
    sockaddr: tuple[Any, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


PARSED_KEEP = 4096  # addresses whose parse is kept (bounded: a flood of sources evicts)
_parsed: dict[tuple[str, int], tuple[str, bool, str]] = {}


def peer_of(sockaddr: tuple[Any, ...], ipv6_prefix_bits: int = 64, keep: bool = True) -> Peer:
    """``sockaddr`` (as accept or recvfrom return it) as a ``Peer``: one parse of the address.

    The parse of an address is kept (``PARSED_KEEP`` of them, the oldest forgotten first), so
    that many connections from one host share one string for it and accepting costs no
    ``ipaddress`` work after the first. ``keep=False`` leaves ``sockaddr`` out of the peer: a
    TCP connection never sends to it, and 100,000 of them would hold 100,000 tuples."""
    raw = sockaddr[0]
    parsed = _parsed.get((raw, ipv6_prefix_bits))
    if parsed is None:
        parsed = _parse(raw, ipv6_prefix_bits)
        if len(_parsed) >= PARSED_KEEP:
            del _parsed[next(iter(_parsed))]
        _parsed[(raw, ipv6_prefix_bits)] = parsed
    ip, loopback, key = parsed
    return Peer(ip, sockaddr[1], loopback, key, sockaddr if keep else ())


def _parse(raw: str, ipv6_prefix_bits: int) -> tuple[str, bool, str]:
    """An address's plain form, whether it is loopback, and its key for per-peer limits."""
    try:
        addr = ipaddress.ip_address(raw.split("%", 1)[0])
    except ValueError:  # not an IP address at all (a Unix socket's path, say)
        return raw, False, raw
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    ip = str(addr)
    if ip == raw:
        ip = raw  # the string accept gave: one object, not two equal ones
    if isinstance(addr, ipaddress.IPv6Address) and 0 < ipv6_prefix_bits < 128:
        shift = 128 - ipv6_prefix_bits
        key = f"{ipaddress.IPv6Address(int(addr) >> shift << shift)}/{ipv6_prefix_bits}"
    else:
        key = ip
    return ip, addr.is_loopback, key


def _ipv4_of(ifname: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            request = struct.pack("256s", ifname.encode()[:15])
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, request)
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def _global_ipv6() -> list[str]:
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            rows = [line.split() for line in f]
    except OSError:
        return []
    found = []
    for row in rows:
        hexaddr, scope = row[0], row[3]
        if scope == "00":  # global scope: not loopback, not link-local
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(hexaddr))))
    return found


def local_addresses() -> list[str]:
    """This host's IPv4 and global IPv6 addresses, loopback left out."""
    found = []
    for _, name in socket.if_nameindex():
        ip = _ipv4_of(name)
        if ip and not is_loopback(ip):
            found.append(ip)
    return found + _global_ipv6()
