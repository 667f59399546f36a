"""Server settings: every default visible here, each overridable by ``LAB_<NAME>``."""

from __future__ import annotations

from dataclasses import dataclass

from lab import defaults


@dataclass(frozen=True)
class ServerConfig:
    bind: str = "::"  # "::" listens dual-stack (IPv4 and IPv6); "0.0.0.0" IPv4 only
    echo_port: int = defaults.ECHO_PORT
    udp_port: int = defaults.UDP_PORT
    app_port: int = defaults.APP_PORT
    greet_port: int = defaults.GREET_PORT
    backlog: int = 1024
    max_connections: int = 2048  # over the cap a connection is told and closed
    idle_timeout_s: float = 300.0  # a connection with no bytes moving for this long is closed
    frame_deadline_s: float = 10.0  # a started frame must be complete within this
    max_content_bytes: int = 1 << 20  # app protocol: largest content accepted
    max_datagram_bytes: int = 65507  # UDP: larger datagrams are dropped and logged
    write_buffer_bytes: int = 256 << 10  # unsent bytes per connection before reading pauses
    keepalive_idle_s: int = 60  # TCP keepalive: first probe after this much silence
    shutdown_grace_s: float = 5.0  # SIGTERM: time in-flight exchanges get to finish
    log_level: str = "INFO"
