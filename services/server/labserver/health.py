"""``python3 -m labserver --healthcheck``: is every listener answering, over IPv4 and IPv6?

Probes come from loopback, which the server logs at DEBUG so that a healthcheck every
second does not bury the connection story in the logs.
"""

from __future__ import annotations

import os
import socket

from .config import ServerConfig

PROBE_TIMEOUT_S = 1.0


def _tcp_probe(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
        pass


def _udp_probe(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(PROBE_TIMEOUT_S)
        token = os.urandom(8)
        sock.sendto(token, (host, port))
        data, _ = sock.recvfrom(64)
        if data != token:
            raise OSError("UDP echo answered with other bytes")


def _ipv6_loopback() -> bool:
    """Is there a ::1 here? Not in a container whose network has IPv6 turned off."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def check(config: ServerConfig, tcp_ports: list[int]) -> int:
    """Probe each listener on 127.0.0.1 (and ::1 when dual-stack); print one line; 0 if healthy."""
    hosts = ["127.0.0.1"]
    if config.bind in ("::", "") and socket.has_dualstack_ipv6() and _ipv6_loopback():
        hosts.append("::1")
    problems = []
    for host in hosts:
        for port in tcp_ports:
            try:
                _tcp_probe(host, port)
            except OSError as exc:
                problems.append(f"tcp {host} port {port}: {exc}")
        try:
            _udp_probe(host, config.udp_port)
        except OSError as exc:
            problems.append(f"udp {host} port {config.udp_port}: {exc}")
    if problems:
        print("unhealthy: " + "; ".join(problems))
        return 1
    print(f"healthy: tcp {tcp_ports} and udp {config.udp_port} on {', '.join(hosts)}")
    return 0
