"""One table of listeners, read by everything: a toy listener (daytime) added through the
registry alone is served, probed by the health check and reached by the client's demo; and what
cannot import the table (compose.yaml, the Dockerfile) is checked against it.

docs/architecture.md's recipe for adding a listener is this test, step by step.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from pathlib import Path
from typing import ClassVar

import pytest
from inprocess import TIMEOUT_S, InProcessServer
from lab import registry
from lab.settings import SettingsError
from labclient import demo
from labclient.config import ClientConfig
from labclient.results import Endpoints, Result
from labclient.transport import Target, connect, endpoints
from labserver import health
from labserver.base import Protocol, Transport
from labserver.config import ServerConfig

ROOT = Path(__file__).resolve().parents[2]


# -- 1. the protocol (the server's side) ---------------------------------------------------------
class DaytimeProtocol(Protocol):
    """RFC 867, more or less: the time as a line, then close."""

    name = "daytime"
    speaks_first = True

    def connection_made(self, transport: Transport) -> None:
        super().connection_made(transport)
        transport.write(f"daytime {time.strftime('%H:%M:%S')}\r\n".encode())
        transport.close("told the time")

    def data_received(self, data: memoryview) -> None:
        pass


# -- 2. its health probe: a real exchange ---------------------------------------------------------
def daytime_probe(host: str, port: int, timeout_s: float) -> None:
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        if not sock.recv(64).startswith(b"daytime "):
            raise health.ProbeFailed("no time of day")


# -- 3. the client's exchange and its result --------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DaytimeResult(Result):
    command: ClassVar[str] = "daytime"
    endpoints: Endpoints
    line: str

    def summary(self) -> str:
        return f"daytime   {self.endpoints.route()}  {self.line}"


def daytime_exchange(at: Target) -> list[Result]:
    sock, _ = connect(at)
    with sock:
        return [DaytimeResult(endpoints(sock), sock.recv(64).decode().strip())]


# -- 4. its row ---------------------------------------------------------------------------------
DAYTIME = registry.Listener(
    "daytime",
    "tcp",
    "daytime_port",
    13,
    protocol="test_registry:DaytimeProtocol",
    probe="test_registry:daytime_probe",
    exchange="test_registry:daytime_exchange",
)


def test_a_listener_added_through_the_registry_alone_is_served_probed_and_demoed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with registry.extended(DAYTIME), InProcessServer() as server:
        port = server.ports["daytime"]  # served (the server's wiring read the row)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
            assert sock.recv(64).startswith(b"daytime ")

        assert health.check(server.config, server.ports) == 0  # probed
        assert "daytime" in capsys.readouterr().out.split(" answered on ")[0]

        lines: list[str] = []  # reached by the demo, in the order of the table
        result = demo.run(
            Target("127.0.0.1", 0, deadline_s=2, timeout_s=TIMEOUT_S), server.ports, lines.append
        )
        kinds = [each.command for each in result.exchanges]
        assert kinds == ["echo", "udp", "greet", "app", "app", "app", "daytime"]
        assert any(line.strip().startswith("daytime   IPv4") for line in lines)
    assert DAYTIME not in registry.LISTENERS  # and gone again


def test_the_ports_come_from_the_registrys_settings() -> None:
    assert registry.ports({}) == {row.name: row.default_port for row in registry.LISTENERS}
    assert registry.ports({"LAB_APP_PORT": "7000"})["app"] == 7000
    with pytest.raises(SettingsError, match="LAB_ECHO_PORT='x'"):
        registry.ports({"LAB_ECHO_PORT": "x"})


def test_every_row_names_what_exists() -> None:
    for row in registry.LISTENERS:
        assert row.kind in ("tcp", "udp")
        for reference in (row.protocol, row.probe, row.exchange):
            assert callable(registry.resolve(reference)), reference
        fields = {f.name for f in dataclasses.fields(ServerConfig)}
        assert {field for _, field in row.settings} <= fields, row.name


# -- what cannot read the table is checked against it --------------------------------------------
def compose_environment(service: str) -> set[str]:
    """The ``LAB_*`` names a compose.yaml service passes through (its ``environment:`` list)."""
    text = (ROOT / "compose.yaml").read_text()
    block = re.search(rf"^  {service}:\n(.*?)(?=^  \w[\w-]*:\n|^\S)", text, re.M | re.S)
    assert block, f"no service {service} in compose.yaml"
    return set(re.findall(r"^\s+- (LAB_[A-Z0-9_]+)", block.group(1), re.M))


def test_compose_passes_every_setting_through() -> None:
    ports = {row.env for row in registry.LISTENERS}
    server = {f"LAB_{f.name.upper()}" for f in dataclasses.fields(ServerConfig)}
    client = {f"LAB_{f.name.upper()}" for f in dataclasses.fields(ClientConfig)}
    assert compose_environment("server") == (server | ports) - {"LAB_PORTS_FILE"}
    assert compose_environment("client") == client | ports


def test_the_server_image_exposes_every_listener() -> None:
    dockerfile = (ROOT / "services" / "server" / "Dockerfile").read_text()
    expose = re.search(r"^EXPOSE (.*)$", dockerfile, re.M)
    assert expose is not None, "the server's Dockerfile has no EXPOSE"
    exposed = set(expose.group(1).split())
    assert exposed == {f"{row.default_port}/{row.kind}" for row in registry.LISTENERS}
