"""Client settings: every default visible here, each overridable by ``LAB_<NAME>``."""

from __future__ import annotations

from dataclasses import dataclass

from lab import defaults


@dataclass(frozen=True)
class ClientConfig:
    host: str = "server"  # the server's compose service name
    server: str = "lab"  # which server program (LAB_SERVER): the demo asks only for what it serves
    echo_port: int = defaults.ECHO_PORT
    udp_port: int = defaults.UDP_PORT
    app_port: int = defaults.APP_PORT
    greet_port: int = defaults.GREET_PORT
    connect_deadline_s: float = 30.0  # keep retrying to connect for this long
    timeout_s: float = 10.0  # no progress for this long in an exchange is a timeout
    max_time_s: float = 60.0  # an exchange (once connected) may take this long in all
