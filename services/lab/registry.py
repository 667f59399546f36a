"""The lab's listeners, one row each: the one table that everything else reads.

    name        kind  port setting      default  server's protocol, health probe, client's exchange
    tcp-echo    tcp   LAB_ECHO_PORT     65432    ...
    udp-echo    udp   LAB_UDP_PORT      65432    (same number, other protocol)
    app         tcp   LAB_APP_PORT      65433    the framed protocol
    greeting    tcp   LAB_GREET_PORT    65434    a line, for nc / telnet

Readers: the server's wiring (``labserver.cli``), its health check, the client's port
defaults and its demo, the tests' fixtures, ``make capture``; and tests check ``compose.yaml``'s
environment and the server's ``EXPOSE`` against it. Adding a listener is its protocol, its row,
its client exchange, its tests and a line of docs (docs/architecture.md has the recipe, drawn
from ``tests/unit/test_registry.py``, which adds a toy listener through this table alone).

The server's and the client's code live in different images, so a row names them as
``"module:attribute"``, imported only by the side that runs them (``resolve``). These names are
the project's own, never a peer's.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import settings


@dataclass(frozen=True)
class Listener:
    """One listener of the lab server."""

    name: str  # in log lines, health output and results
    kind: str  # "tcp" or "udp"
    port_setting: str  # the settings field of its port: LAB_<PORT_SETTING> on both sides
    default_port: int
    protocol: str  # "module:Class", a labserver.base Protocol or DatagramProtocol
    probe: str  # "module:function" (host, port, timeout_s): a real exchange; raises if unhealthy
    exchange: str = ""  # "module:function" (Target) -> list of results: the demo's exchanges
    settings: tuple[tuple[str, str], ...] = ()  # (protocol keyword, ServerConfig field) pairs
    demo: bool = True  # does the client's demo run its exchange?

    @property
    def env(self) -> str:
        return settings.env_name(self.port_setting)


def port_settings() -> list[tuple[str, Any, str]]:
    """Each listener's port setting as (variable, default, meaning), as settings.documented."""
    return [
        (row.env, row.default_port, f"{row.name}: its {row.kind.upper()} port (0: any free port)")
        for row in LISTENERS
    ]


LISTENERS: list[Listener] = [
    Listener(
        "tcp-echo",
        "tcp",
        "echo_port",
        65432,
        "labserver.protocols:EchoProtocol",
        "labserver.health:tcp_echo",
        "labclient.demo:tcp_echo",
        settings=(("quiet_s", "shutdown_grace_s"),),
    ),
    Listener(
        "udp-echo",
        "udp",
        "udp_port",
        65432,
        "labserver.protocols:UdpEchoProtocol",
        "labserver.health:udp_echo",
        "labclient.demo:udp_echo",
        settings=(("max_bytes", "max_datagram_bytes"), ("rate_per_source", "udp_rate_per_source")),
    ),
    Listener(
        "greeting",
        "tcp",
        "greet_port",
        65434,
        "labserver.protocols:GreetingProtocol",
        "labserver.health:greeting",
        "labclient.demo:greeting",
    ),
    Listener(
        "app",
        "tcp",
        "app_port",
        65433,
        "labserver.app:AppProtocol",
        "labserver.health:app",
        "labclient.demo:app_actions",
        settings=(
            ("max_content_bytes", "max_content_bytes"),
            ("frame_deadline_s", "frame_deadline_s"),
            ("max_reply_bytes", "max_reply_bytes"),
        ),
    ),
]

# LAB_SERVER chooses the server program: the lab's own serves every listener; the tutorial's
# steps (services/labtutorial) serve TCP echo only. The demo and the health check ask only for
# what it serves.
STEPS = ("blocking", "threaded", "multiconn")
SERVERS = ("lab", *STEPS)


def served_by(server: str) -> list[Listener]:
    if server == "lab":
        return list(LISTENERS)
    return [listener for listener in LISTENERS if listener.name == "tcp-echo"]


def listener(name: str) -> Listener:
    for row in LISTENERS:
        if row.name == name:
            return row
    raise KeyError(f"no listener {name!r}")


def default_port(name: str) -> int:
    return listener(name).default_port


def ports(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """Each listener's port: ``LAB_<PORT_SETTING>`` where set, else its default. A bad value
    is a ``settings.SettingsError``."""
    found = settings.load_values({row.port_setting: row.default_port for row in LISTENERS}, environ)
    return {row.name: found[row.port_setting] for row in LISTENERS}


def resolve(reference: str) -> Any:
    """The object a row names as ``"module:attribute"`` (imported now, by the side that runs
    it)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@contextlib.contextmanager
def extended(*rows: Listener) -> Iterator[None]:
    """``rows`` added to the table while the block runs (a test's toy listener)."""
    LISTENERS.extend(rows)
    try:
        yield
    finally:
        for row in rows:
            LISTENERS.remove(row)
