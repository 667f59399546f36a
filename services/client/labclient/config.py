"""Client settings: every default visible here, each overridable by ``LAB_<NAME>``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientConfig:
    host: str = "server"  # the server's name or address (the compose service's name)
    server: str = "lab"  # which server program (LAB_SERVER): the demo asks only for what it serves
    # (The listeners' ports are LAB_<NAME>_PORT, as on the server: lab.registry.)
    connect_deadline_s: float = 30.0  # keep retrying to connect for this long
    timeout_s: float = 10.0  # no progress for this long in an exchange is a timeout
    max_time_s: float = 60.0  # an exchange (once connected) may take this long in all
