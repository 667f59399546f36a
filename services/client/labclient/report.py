"""Result dicts as one line a person can follow."""

from __future__ import annotations

from lab.netinfo import endpoint


def human_size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def route(r: dict) -> str:
    return (f"{r['family']}  {endpoint((r['local_ip'], r['local_port']))} -> "
            f"{endpoint((r['peer_ip'], r['peer_port']))}")


def summarize(r: dict) -> str:
    command = r["command"]
    if "repeats" in r:
        return (f"{command} x{r['repeats']}: all {r['completed']} exchanges checked "
                f"({r['retried']} needed a retry); last: {summarize(r['last'])}")
    if command == "echo" and "results" in r:
        return (f"TCP echo  {r['completed']} of {r['connections']} clients at once got back their "
                f"own payload ({r['distinct_payloads']} distinct sha256)")
    if command == "echo":
        return (f"TCP echo  {route(r)}  sent {human_size(r['sent'])}, got "
                f"{human_size(r['received'])} back, sha256 match  {r['elapsed_ms']:.1f} ms")
    if command == "udp":
        return (f"UDP echo  {route(r)}  {r['echoed']} datagrams of {r['size']} B echoed intact "
                f"({r['resent']} resent)  {r['elapsed_ms']:.1f} ms")
    if command == "app" and "completed" in r:
        return (f"app       {r['completed']} of {r['connections']} clients at once, "
                f"{r['requests_per_connection']} request(s) each: every reply correct and in order")
    if command == "app":
        many = (f"  ({r['requests']} requests pipelined, in order)" if r["pipelined"]
                else f"  ({r['requests']} requests, {r['connections_used']} connections)"
                if r["requests"] > 1 else "")
        asked = r["action"] + (f" {r['value']!r}" if r["value"] is not None else "")
        kind = "binary " if r["binary"] else ""
        return f"app       {route(r)}  {kind}{asked} -> {r['result']!r}{many}"
    if command == "raw":
        return "\n".join(
            f"raw       {route(p)}  sent {p['sent']} B, got {p['received']} B"
            f"{', server closed' if p['closed_by_server'] else ''}: {p['text']!r}"
            for p in r["probes"])
    if command == "greet":
        return f"greeting  {route(r)}  server said: {r['line']}"
    return str(r)
