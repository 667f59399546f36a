"""Server settings: every default visible here, each overridable by ``LAB_<NAME>``."""

from __future__ import annotations

from dataclasses import dataclass

from lab import defaults, framing


@dataclass(frozen=True)
class ServerConfig:
    server: str = "lab"  # the program: lab, or a tutorial step (blocking, threaded, multiconn)
    bind: str = "::"  # "::" listens dual-stack (IPv4 and IPv6); "0.0.0.0" IPv4 only
    echo_port: int = defaults.ECHO_PORT
    udp_port: int = defaults.UDP_PORT
    app_port: int = defaults.APP_PORT
    greet_port: int = defaults.GREET_PORT
    backlog: int = 1024
    max_connections: int = 2048  # over the cap a connection is told and closed
    max_connections_per_ip: int = 128  # one peer address may hold at most this many (0: no cap)
    first_byte_timeout_s: float = 10.0  # a client that sends nothing this long after connecting
    idle_timeout_s: float = 300.0  # a connection with no bytes moving for this long is closed
    max_lifetime_s: float = 600.0  # a connection is closed (between exchanges) after this long
    frame_deadline_s: float = 10.0  # a started frame must be complete within this
    max_content_bytes: int = framing.DEFAULT_MAX_CONTENT_BYTES  # app protocol: largest content
    max_datagram_bytes: int = 65507  # UDP: larger datagrams are dropped and logged
    udp_rate_per_source: int = 5000  # UDP: datagrams/s echoed to one address (burst: 1 s worth)
    write_buffer_bytes: int = 256 << 10  # unsent bytes per connection before reading pauses
    memory_budget_bytes: int = 0  # bytes buffered across all connections; 0: a third of the
    #                               memory limit (cgroup), at most 1 GiB
    keepalive_idle_s: int = 60  # TCP keepalive: first probe after this much silence
    shutdown_grace_s: float = 5.0  # SIGTERM: time in-flight exchanges get to finish
    log_level: str = "INFO"
