"""Server settings: every default visible here, each overridable by ``LAB_<NAME>``. The ports
are the registry's (``lab.registry``), one setting per listener."""

from __future__ import annotations

from dataclasses import dataclass

from lab import framing, logs, registry, settings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ServerConfig:
    server: str = "lab"  # the program: lab, or a tutorial step (blocking, threaded, multiconn)
    bind: str = "::"  # "::" listens dual-stack (IPv4 and IPv6); "0.0.0.0" IPv4 only
    # (Each listener's port is LAB_<NAME>_PORT: lab.registry has them, with their defaults.)
    ports_file: str = ""  # once listening, write {"listener": port, ...} as JSON to this file
    backlog: int = 1024  # listen() backlog: connections the kernel queues before accept
    max_connections: int = 2048  # over the cap a peer is told (where the protocol has words)
    #                              and closed, counted in the logs; the last 4 slots are loopback's
    max_connections_per_ip: int = 128  # one peer address may hold at most this many (loopback
    #                                    exempt; 0: no cap)
    first_byte_timeout_s: float = 10.0  # close a client that sends nothing this long after
    #                                     connecting (not the greeting, which speaks first; 0: off)
    idle_timeout_s: float = 300.0  # a connection with no bytes moving for this long is closed
    max_lifetime_s: float = 600.0  # a connection is closed (between exchanges) after this long
    #                                (0: off)
    frame_deadline_s: float = 10.0  # a started frame must be complete within this (time spent
    #                                 with reading paused does not count)
    max_content_bytes: int = framing.DEFAULT_MAX_CONTENT_BYTES  # app protocol: largest content
    max_datagram_bytes: int = 65507  # UDP: larger datagrams are dropped and logged
    udp_rate_per_source: int = 5000  # UDP: datagrams/s echoed to one address (burst: 1 s
    #                                  worth; 0: no limit)
    write_buffer_bytes: int = 256 << 10  # unsent bytes: over this, a connection stops reading
    #                                      (echo) or answering (app) until its peer reads
    connection_high_water_bytes: int = 0  # bytes one connection may hold (received and not
    #                      yet answered, plus unsent): reading stops there. 0: one largest frame
    #                      (max_content_bytes + 129 KiB) plus write_buffer_bytes (897 KiB)
    max_reply_bytes: int = 1 << 20  # app protocol: a larger reply is refused (reply-too-large)
    ipv6_prefix_bits: int = 64  # IPv6 peers count per network of this size for the per-ip cap
    #                             (all hosts of one LAN /64 share it; 128: each address alone)
    memory_budget_bytes: int = 0  # bytes buffered across all connections; past it, the
    #                               connections holding the most are closed first. 0: a third of
    #                               the memory limit (cgroup), at most 1 GiB
    keepalive_idle_s: int = 60  # TCP keepalive: first probe after this much silence (0: off)
    shutdown_grace_s: float = 5.0  # SIGTERM: time in-flight exchanges get to finish
    log_level: str = "INFO"  # DEBUG also logs loopback peers (the health check) and more
    quiet_loopback: bool = False  # log loopback peers at DEBUG: compose.yaml sets it, since in
    #                             a container only the health check (every second) uses loopback;
    #                             run by hand, your own clients on loopback are logged as others
    log_format: str = "text"  # text (for people) or json (one object per line, for programs)
    stats_interval_s: float = 0.0  # a stats line this often (connections, bytes, datagrams,
    #                                budget used); 0: off (the totals come at shutdown anyway)


def largest_frame(config: ServerConfig) -> int:
    """The most one unfinished frame can make a connection hold (``framing.MessageDecoder``)."""
    return framing.LARGEST_FRAME_OVERHEAD + config.max_content_bytes


def high_water(config: ServerConfig) -> int:
    """The bytes one connection may hold before it stops reading."""
    return config.connection_high_water_bytes or largest_frame(config) + config.write_buffer_bytes


def config_problem(config: ServerConfig) -> str | None:
    """Why these settings cannot work together, or None."""
    frame = largest_frame(config)
    if config.connection_high_water_bytes and config.connection_high_water_bytes <= frame:
        return (
            f"LAB_CONNECTION_HIGH_WATER_BYTES={config.connection_high_water_bytes} cannot "
            f"hold one whole frame of LAB_MAX_CONTENT_BYTES={config.max_content_bytes} "
            f"(at least {frame})"
        )
    if config.log_format not in logs.FORMATS:
        return f"LAB_LOG_FORMAT={config.log_format!r} is not one of {', '.join(logs.FORMATS)}"
    if not 0 < config.ipv6_prefix_bits <= 128:
        return f"LAB_IPV6_PREFIX_BITS={config.ipv6_prefix_bits} is not between 1 and 128"
    return None


def load_settings() -> tuple[ServerConfig, dict[str, int]]:
    """The settings and the listeners' ports from the environment; ``SettingsError`` (one
    line) for anything they cannot be."""
    config = settings.load(ServerConfig)
    ports = registry.ports()
    problem = config_problem(config)
    if problem is None and config.log_level.upper() not in LOG_LEVELS:
        problem = f"LAB_LOG_LEVEL={config.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
    if problem is None and config.server not in registry.SERVERS:
        problem = f"LAB_SERVER={config.server!r} is not one of {', '.join(registry.SERVERS)}"
    if problem is not None:
        raise settings.SettingsError(problem)
    return config, ports
