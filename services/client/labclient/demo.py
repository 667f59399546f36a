"""``demo``: every exchange over IPv4 and IPv6, narrated so a person can see it cross hosts."""

from __future__ import annotations

import socket
from collections.abc import Callable

from lab import defaults
from lab.netinfo import is_loopback, local_addresses, plain_ip

from . import app, exchanges
from .results import DemoResult, Result
from .transport import Target, retrying

DEMO_ECHO_BYTES = 64 << 10
# The demo's exchanges in order, each with the listener it needs (lab.defaults.SERVERS).
DEMO_EXCHANGES: tuple[tuple[str, Callable[[dict[str, Target]], Result]], ...] = (
    ("tcp-echo", lambda at: exchanges.tcp_echo(at["echo"], DEMO_ECHO_BYTES)),
    ("udp-echo", lambda at: exchanges.udp_echo(at["udp"], 512, 3, 5, 1.0)),
    ("greeting", lambda at: exchanges.greet(at["greet"])),
    ("app", lambda at: app.run(at["app"], "search", "ring")),
    ("app", lambda at: app.run(at["app"], "reverse", "Hello, world!")),
    ("app", lambda at: app.run(at["app"], "whoami", None)),
)


def _addresses(host: str, family: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({plain_ip(info[4][0]) for info in infos})


def crossed_hosts(result: Result, mine: list[str]) -> bool:
    """Did this exchange leave this host? Our end is ours; theirs is not, nor loopback."""
    return (result["local_ip"] in mine and result["peer_ip"] not in mine
            and not is_loopback(result["peer_ip"]))


def run(target: Target, ports: dict[str, int], say: Callable[[str], None] = print,
        server: str = "lab") -> DemoResult:
    """Every exchange with ``target.host`` that ``server`` serves, over each IP version it has,
    on ``ports``."""
    host = target.host
    serves = defaults.SERVERS[server]
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
        say(f"the server is the tutorial's '{server}' step: it serves {', '.join(serves)} only, "
            "so the demo skips the other exchanges")
    results = []
    for family, label in families:
        say(f"-- over {label} --")
        at = {name: target.at(port, family) for name, port in ports.items()}
        for listener, exchange in DEMO_EXCHANGES:
            if listener in serves:
                result = exchange(at)
                say("  " + result.summary())
                results.append(result)

    crossed = all(crossed_hosts(r, mine) for r in results)
    peers = sorted({r["peer_ip"] for r in results})
    if crossed:
        say(f"verdict: all {len(results)} exchanges crossed from this container "
            f"({', '.join(mine)}) to another ({', '.join(peers)}); none used loopback.")
    else:
        say(f"verdict: NOT every exchange crossed hosts (peers {', '.join(peers)})")
    return DemoResult(client=me, client_addresses=mine, server_a=a, server_aaaa=aaaa,
                      crossed_hosts=crossed, exchanges=results)

