"""What an exchange observed: one result type per exchange, each printing itself for a person
(``summary()``) and, being a dict of plain values, as JSON for the tests (``--json``)."""

from __future__ import annotations

from lab.netinfo import endpoint


def human_size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


class Result(dict):
    """The observations of one exchange. ``command`` names the subcommand that made it."""

    command = ""

    def __init__(self, *args: object, **fields: object) -> None:
        super().__init__(*args, **fields)
        self.setdefault("command", self.command)

    def route(self) -> str:
        return (f"{self['family']}  {endpoint((self['local_ip'], self['local_port']))} -> "
                f"{endpoint((self['peer_ip'], self['peer_port']))}")

    def summary(self) -> str:
        return str(dict(self))


class EchoResult(Result):
    command = "echo"

    def summary(self) -> str:
        return (f"TCP echo  {self.route()}  sent {human_size(self['sent'])}, got "
                f"{human_size(self['received'])} back, sha256 match  {self['elapsed_ms']:.1f} ms")


class EchoManyResult(Result):
    command = "echo"

    def summary(self) -> str:
        return (f"TCP echo  {self['completed']} of {self['connections']} clients at once got "
                f"back their own payload ({self['distinct_payloads']} distinct sha256)")


class UdpResult(Result):
    command = "udp"

    def summary(self) -> str:
        return (f"UDP echo  {self.route()}  {self['echoed']} datagrams of {self['size']} B "
                f"echoed intact ({self['resent']} resent)  {self['elapsed_ms']:.1f} ms")


class GreetResult(Result):
    command = "greet"

    def summary(self) -> str:
        return f"greeting  {self.route()}  server said: {self['line']}"


class AppResult(Result):
    command = "app"

    def summary(self) -> str:
        many = (f"  ({self['requests']} requests pipelined, in order)" if self["pipelined"]
                else f"  ({self['requests']} requests, {self['connections_used']} connections)"
                if self["requests"] > 1 else "")
        asked = self["action"] + (f" {self['value']!r}" if self["value"] is not None else "")
        kind = "binary " if self["binary"] else ""
        return f"app       {self.route()}  {kind}{asked} -> {self['result']!r}{many}"


class AppManyResult(Result):
    command = "app"

    def summary(self) -> str:
        return (f"app       {self['completed']} of {self['connections']} clients at once, "
                f"{self['requests_per_connection']} request(s) each: every reply correct and "
                "in order")


class RawProbe(Result):
    command = "raw"

    def summary(self) -> str:
        closed = ", server closed" if self["closed_by_server"] else ""
        stopped = f" ({self['stopped']})" if self.get("stopped") else ""
        return (f"raw       {self.route()}  sent {self['sent']} B, got {self['received']} B"
                f"{closed}{stopped}: {self['text']!r}")


class RawResult(Result):
    command = "raw"

    def summary(self) -> str:
        return "\n".join(RawProbe(probe).summary() for probe in self["probes"])


class RepeatResult(Result):
    """``--repeat N``: every run checked; the last one's observations kept."""

    def summary(self) -> str:
        return (f"{self['command']} x{self['repeats']}: all {self['completed']} exchanges "
                f"checked ({self['retried']} needed a retry); last: {self['last'].summary()}")


class DemoResult(Result):
    command = "demo"

    def summary(self) -> str:
        return ""  # the demo narrates as it goes
