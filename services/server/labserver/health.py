"""``python3 -m labserver --healthcheck``: is every listener answering, over IPv4 and IPv6?

An accepted connection proves little (the kernel accepts into the backlog while the loop is
wedged), so every probe is a real exchange with a short deadline: bytes echoed over TCP and UDP,
the greeting line, and one framed request answered. Probes go to the address the server is bound
to (``LAB_BIND``): 127.0.0.1 and ::1 for the wildcard, the address itself otherwise.

Probes come from loopback, which the server logs at DEBUG (so a healthcheck every second does not
bury the connection story) and lets into the slots it keeps for loopback (so a full server still
reports its health truthfully).
"""

from __future__ import annotations

import os
import socket
import sys
import time

from lab import framing, registry, settings
from lab.appconn import NEED_DATA, ClientConnection, Reply, Request

from .config import ServerConfig, load_settings

DEADLINE_S = 2.0  # for all probes together; compose's healthcheck timeout is 3 s


class ProbeFailed(Exception):
    pass


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ProbeFailed(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def tcp_echo(host: str, port: int, timeout_s: float) -> None:
    token = os.urandom(16)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(token)
        if _recv_exactly(sock, len(token)) != token:
            raise ProbeFailed("echoed other bytes")


def app(host: str, port: int, timeout_s: float) -> None:
    token = os.urandom(8).hex()
    app = ClientConnection()
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(app.send(Request("echo", token)))
        while (reply := app.next_event()) is NEED_DATA:
            app.receive_data(sock.recv(4096))
    if reply != Reply(token):
        raise ProbeFailed(f"unexpected reply {framing.clip(reply)}")


def greeting(host: str, port: int, timeout_s: float) -> None:
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        if not _recv_exactly(sock, 6).startswith(b"Hello "):
            raise ProbeFailed("no greeting")


def udp_echo(host: str, port: int, timeout_s: float) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        token = os.urandom(8)
        sock.sendto(token, (host, port))
        data, _ = sock.recvfrom(64)
        if data != token:
            raise ProbeFailed("UDP echo answered with other bytes")


def _ipv6_loopback() -> bool:
    """Is there a ::1 here? Not in a container whose network has IPv6 turned off."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def probe_hosts(bind: str) -> list[str]:
    """Where a server bound to ``bind`` can be reached from inside its own container."""
    if bind in ("", "::"):
        hosts = ["127.0.0.1"]
        if socket.has_dualstack_ipv6() and _ipv6_loopback():
            hosts.append("::1")
        return hosts
    if bind == "0.0.0.0":
        return ["127.0.0.1"]
    return [bind]


def check(config: ServerConfig, ports: dict[str, int]) -> int:
    """Probe each listener the server serves (the registry's rows and their probes) at each
    address; print one line; 0 if healthy."""
    hosts = probe_hosts(config.bind)
    rows = registry.served_by(config.server)
    deadline = time.monotonic() + DEADLINE_S
    problems = []
    for host in hosts:
        for row in rows:
            port = ports[row.name]
            left = deadline - time.monotonic()
            if left <= 0:
                problems.append(f"{row.name} {host} port {port}: no time left")
                continue
            try:
                registry.resolve(row.probe)(host, port, left)
            except (OSError, ProbeFailed, framing.FramingError) as exc:
                problems.append(f"{row.name} {host} port {port}: {str(exc) or type(exc).__name__}")
    if problems:
        print("unhealthy: " + "; ".join(problems))
        return 1
    print(f"healthy: {', '.join(row.name for row in rows)} answered on {', '.join(hosts)}")
    return 0


def main() -> int:
    """The settings as the server reads them (2 and one line if they cannot be), then every
    probe."""
    try:
        config, ports = load_settings()
    except settings.SettingsError as exc:
        print(f"labserver: {exc}", file=sys.stderr)
        return 2
    return check(config, ports)
