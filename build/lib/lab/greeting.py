"""The greeting line: what the server says on 65434, and how a client reads it back.

    Hello from <server hostname> at <server ip:port>! You are <client ip:port>.\\r\\n

IPv6 endpoints are written ``[ip]:port`` (``lab.netinfo.endpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass

_START, _AT, _YOU, _END = "Hello from ", " at ", "! You are ", "."


@dataclass(frozen=True)
class Greeting:
    hostname: str
    server: str  # ip:port, as the server sees itself
    client: str  # ip:port, as the server sees the client


def greeting_line(hostname: str, server: str, client: str) -> str:
    return f"Hello from {hostname} at {server}! You are {client}.\r\n"


def parse_greeting(line: str) -> Greeting | None:
    """The parts of a greeting line, or None if it is not one. Linear in the line's length
    (partitions, no regular expression that could backtrack): it reads a peer's bytes."""
    line = line.strip()
    if not line.startswith(_START) or not line.endswith(_END):
        return None
    hostname, at, rest = line[len(_START) : -len(_END)].partition(_AT)
    server, you, client = rest.partition(_YOU)
    parts = (hostname, server, client)
    if not (at and you) or not all(parts) or any(len(p.split()) != 1 for p in parts):
        return None
    return Greeting(hostname, server, client)
