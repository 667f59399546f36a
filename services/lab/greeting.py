"""The greeting line: what the server says on 65434, and how a client reads it back.

    Hello from <server hostname> at <server ip:port>! You are <client ip:port>.\\r\\n

IPv6 endpoints are written ``[ip]:port`` (``lab.netinfo.endpoint``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"Hello from (?P<hostname>\S+) at (?P<server>\S+)! You are (?P<client>\S+)\.")


@dataclass(frozen=True)
class Greeting:
    hostname: str
    server: str  # ip:port, as the server sees itself
    client: str  # ip:port, as the server sees the client


def greeting_line(hostname: str, server: str, client: str) -> str:
    return f"Hello from {hostname} at {server}! You are {client}.\r\n"


def parse_greeting(line: str) -> Greeting | None:
    """The parts of a greeting line, or None if it is not one."""
    match = _LINE.match(line.strip())
    return Greeting(**match.groupdict()) if match else None
