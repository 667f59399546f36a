"""``demo``: every exchange over IPv4 and IPv6, narrated so a person can see it cross hosts.

Which exchanges: each listener of the registry (``lab.registry``) that the server program
serves and that has ``demo`` set, through the exchange its row names (the functions below).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from lab import registry
from lab.netinfo import is_loopback, local_addresses, plain_ip

from . import app, exchanges
from .results import DemoResult, Result, endpoints_of
from .transport import Target, retrying

DEMO_ECHO_BYTES = 64 << 10


# The demo's exchange for each listener (named by its registry row): a target, its results.
def tcp_echo(at: Target) -> list[Result]:
    return [exchanges.tcp_echo(at, DEMO_ECHO_BYTES)]


def udp_echo(at: Target) -> list[Result]:
    return [exchanges.udp_echo(at, 512, 3, 5, 1.0)]


def greeting(at: Target) -> list[Result]:
    return [exchanges.greet(at)]


def app_actions(at: Target) -> list[Result]:
    return [
        app.run(at, "search", "ring"),
        app.run(at, "reverse", "Hello, world!"),
        app.run(at, "whoami", None),
    ]


def _addresses(host: str, family: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({plain_ip(str(info[4][0])) for info in infos})


def crossed_hosts(result: Result, mine: list[str]) -> bool:
    """Did this exchange leave this host? Our end is ours; theirs is not, nor loopback."""
    ends = endpoints_of(result)
    return (
        ends is not None
        and ends.local_ip in mine
        and ends.peer_ip not in mine
        and not is_loopback(ends.peer_ip)
    )


def run(
    target: Target, ports: dict[str, int], say: Callable[[str], None] = print, server: str = "lab"
) -> DemoResult:
    """Every demo exchange of what ``server`` serves, with ``target.host``, over each IP
    version it has, on ``ports`` (listener name -> port)."""
    host = target.host
    rows = [row for row in registry.served_by(server) if row.demo and row.exchange]
    me, mine = socket.gethostname(), local_addresses()
    say(f"== sockets lab demo: client {me} ({', '.join(mine)}) -> server '{host}' ==")
    retrying(f"{host} (DNS)", lambda: socket.getaddrinfo(host, None), target.deadline_s)
    a, aaaa = _addresses(host, socket.AF_INET), _addresses(host, socket.AF_INET6)
    say(f"'{host}' resolves to  A {', '.join(a) or '-'}   AAAA {', '.join(aaaa) or '-'}")
    families = [(socket.AF_INET, "IPv4")] if a else []
    if aaaa:
        families.append((socket.AF_INET6, "IPv6"))
    else:
        say("no AAAA record for the server: the IPv6 exchanges are skipped")

    if server != "lab":
        say(
            f"the server is the tutorial's '{server}' step: it serves "
            f"{', '.join(row.name for row in rows)} only, so the demo skips the other exchanges"
        )
    results: list[Result] = []
    for family, label in families:
        say(f"-- over {label} --")
        for row in rows:
            for result in registry.resolve(row.exchange)(target.at(ports[row.name], family)):
                say("  " + result.summary())
                results.append(result)

    crossed = all(crossed_hosts(r, mine) for r in results)
    peers = sorted({ends.peer_ip for r in results if (ends := endpoints_of(r)) is not None})
    if crossed:
        say(
            f"verdict: all {len(results)} exchanges crossed from this container "
            f"({', '.join(mine)}) to another ({', '.join(peers)}); none used loopback."
        )
    else:
        say(f"verdict: NOT every exchange crossed hosts (peers {', '.join(peers)})")
    return DemoResult(
        client=me,
        client_addresses=tuple(mine),
        server_a=tuple(a),
        server_aaaa=tuple(aaaa),
        crossed_hosts=crossed,
        exchanges=tuple(results),
    )
