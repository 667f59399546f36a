"""What an exchange observed: one frozen dataclass per exchange, built once where the exchange
ends. Each prints itself for a person (``summary()``) and as JSON for a program (``to_json()``:
one flat object, the endpoints' fields at the top level, ``command`` naming the subcommand).

The JSON lines' schema is generated from these classes (``json_schema()``) into
docs/client-result.schema.json; the suite validates every JSON line it reads against it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lab.netinfo import endpoint


def human_size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class Endpoints:
    """Who talked to whom, as plain addresses: the heart of the cross-host proof."""

    family: str  # "IPv4" or "IPv6"
    local_ip: str
    local_port: int
    peer_ip: str
    peer_port: int

    def route(self) -> str:
        return (
            f"{self.family}  {endpoint((self.local_ip, self.local_port))} -> "
            f"{endpoint((self.peer_ip, self.peer_port))}"
        )

    @property
    def where(self) -> str:
        return endpoint((self.peer_ip, self.peer_port))


@dataclass(frozen=True)
class Result:
    """The observations of one exchange. ``command`` names the subcommand that made it."""

    command: ClassVar[str] = ""

    def summary(self) -> str:
        return str(self.to_json())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"command": self.command}
        for each in dataclasses.fields(self):
            out.update(_json(each.name, getattr(self, each.name)))
        return out

    def with_retries(self, retries: int) -> Result:
        """The same result, saying how many times its exchange was run again."""
        if not hasattr(self, "retries"):
            return self
        return dataclasses.replace(self, retries=retries)  # type: ignore[call-arg]


def _json(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Endpoints):
        return dataclasses.asdict(value)
    if isinstance(value, Result):
        return {name: value.to_json()}
    if isinstance(value, tuple) and value and isinstance(value[0], Result):
        return {name: [item.to_json() for item in value]}
    return {name: list(value) if isinstance(value, tuple) else value}


@dataclass(frozen=True)
class EchoResult(Result):
    command: ClassVar[str] = "echo"
    endpoints: Endpoints
    sent: int
    received: int
    sha256_sent: str
    sha256_received: str
    attempts: int
    digest_ok: bool
    elapsed_ms: float
    retries: int = 0
    text: str | None = None  # the echo itself, when the payload was text (echo --text)

    def summary(self) -> str:
        line = (
            f"TCP echo  {self.endpoints.route()}  sent {human_size(self.sent)}, got "
            f"{human_size(self.received)} back, sha256 match  {self.elapsed_ms:.1f} ms"
        )
        return line if self.text is None else f"{line}\n{self.text}"


@dataclass(frozen=True)
class EchoManyResult(Result):
    command: ClassVar[str] = "echo"
    connections: int
    completed: int
    distinct_payloads: int
    all_ok: bool
    results: tuple[EchoResult, ...]
    elapsed_ms: float
    retries: int = 0

    def summary(self) -> str:
        return (
            f"TCP echo  {self.completed} of {self.connections} clients at once got "
            f"back their own payload ({self.distinct_payloads} distinct sha256)"
        )


@dataclass(frozen=True)
class UdpResult(Result):
    command: ClassVar[str] = "udp"
    endpoints: Endpoints
    datagrams: int
    size: int
    echoed: int
    resent: int
    digest_ok: bool
    elapsed_ms: float

    def summary(self) -> str:
        return (
            f"UDP echo  {self.endpoints.route()}  {self.echoed} datagrams of {self.size} B "
            f"echoed intact ({self.resent} resent)  {self.elapsed_ms:.1f} ms"
        )


@dataclass(frozen=True)
class GreetResult(Result):
    command: ClassVar[str] = "greet"
    endpoints: Endpoints
    line: str
    attempts: int
    names_me: bool
    retries: int = 0

    def summary(self) -> str:
        return f"greeting  {self.endpoints.route()}  server said: {self.line}"


@dataclass(frozen=True)
class AppResult(Result):
    command: ClassVar[str] = "app"
    endpoints: Endpoints
    attempts: int
    action: str
    value: str | None
    requests: int
    connections_used: int
    pipelined: bool
    binary: bool
    result: Any
    results: tuple[Any, ...] | None
    elapsed_ms: float
    retries: int = 0

    def summary(self) -> str:
        many = (
            f"  ({self.requests} requests pipelined, in order)"
            if self.pipelined
            else f"  ({self.requests} requests, {self.connections_used} connections)"
            if self.requests > 1
            else ""
        )
        asked = self.action + (f" {self.value!r}" if self.value is not None else "")
        kind = "binary " if self.binary else ""
        return f"app       {self.endpoints.route()}  {kind}{asked} -> {self.result!r}{many}"


@dataclass(frozen=True)
class AppManyResult(Result):
    command: ClassVar[str] = "app"
    action: str
    value: str | None
    connections: int
    completed: int
    requests_per_connection: int
    all_ok: bool
    peers: tuple[str, ...]
    elapsed_ms: float
    retries: int = 0

    def summary(self) -> str:
        return (
            f"app       {self.completed} of {self.connections} clients at once, "
            f"{self.requests_per_connection} request(s) each: every reply correct and "
            "in order"
        )


@dataclass(frozen=True)
class RawProbe(Result):
    command: ClassVar[str] = "raw"
    endpoints: Endpoints
    sent: int
    received: int
    text: str
    replies: tuple[Any, ...]
    closed_by_server: bool
    reset: bool
    attempts: int
    stopped: str  # why reading stopped before the server closed, or ""

    def summary(self) -> str:
        closed = ", server closed" if self.closed_by_server else ""
        stopped = f" ({self.stopped})" if self.stopped else ""
        return (
            f"raw       {self.endpoints.route()}  sent {self.sent} B, got {self.received} B"
            f"{closed}{stopped}: {self.text!r}"
        )


@dataclass(frozen=True)
class RawResult(Result):
    """Every probe, and (for a script that sent one payload) the first one's figures on top."""

    command: ClassVar[str] = "raw"
    first: RawProbe
    probes: tuple[RawProbe, ...]

    def to_json(self) -> dict[str, Any]:
        return {**self.first.to_json(), "probes": [p.to_json() for p in self.probes]}

    def summary(self) -> str:
        return "\n".join(probe.summary() for probe in self.probes)


@dataclass(frozen=True)
class RepeatResult(Result):
    """``--repeat N``: every run checked; the last one's observations kept."""

    repeated: str  # the subcommand repeated
    endpoints: Endpoints
    repeats: int
    completed: int
    retried: int
    all_ok: bool
    last: Result
    interrupted: bool = False  # Ctrl-C: completed < repeats, every completed one checked

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "command": self.repeated}

    def summary(self) -> str:
        done = (
            f"stopped (Ctrl-C) after {self.completed}, all checked"
            if self.interrupted
            else f"all {self.completed} exchanges checked"
        )
        return (
            f"{self.repeated} x{self.repeats}: {done} "
            f"({self.retried} needed a retry); last: {self.last.summary()}"
        )


@dataclass(frozen=True)
class DemoResult(Result):
    command: ClassVar[str] = "demo"
    client: str
    client_addresses: tuple[str, ...]
    server_a: tuple[str, ...]
    server_aaaa: tuple[str, ...]
    crossed_hosts: bool
    exchanges: tuple[Result, ...] = field(default=())

    def summary(self) -> str:
        return ""  # the demo narrates as it goes


def endpoints_of(result: Result) -> Endpoints | None:
    found = getattr(result, "endpoints", None)
    return found if isinstance(found, Endpoints) else None


# -- the JSON lines' schema, generated from the classes above ---------------------------------
RESULTS: tuple[type[Result], ...] = (
    EchoResult,
    EchoManyResult,
    UdpResult,
    GreetResult,
    AppResult,
    AppManyResult,
    RawResult,
    RepeatResult,
    DemoResult,
)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a ``labclient ... --json`` line: a result (``"ok": true``)
    of one of RESULTS, or a failure (``"ok": false``, the error, the exit status, and what the
    exchange had seen so far)."""
    defs = {cls.__name__: _object_schema(cls) for cls in (*RESULTS, RawProbe)}
    failure = {
        "type": "object",
        "required": ["ok", "error", "exit_status"],
        "properties": {
            "ok": {"const": False},
            "error": {"type": "string"},
            "exit_status": {"type": "integer", "minimum": 1},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "labclient --json",
        "$defs": {**defs, "failure": failure},
        "oneOf": [
            {
                "allOf": [
                    {"$ref": f"#/$defs/{cls.__name__}"},
                    {"required": ["ok"], "properties": {"ok": {"const": True}}},
                ]
            }
            for cls in RESULTS
        ]
        + [{"$ref": "#/$defs/failure"}],
    }


def _object_schema(cls: type[Result]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {"command": {"type": "string"}}
    if cls is not RepeatResult:
        properties["command"] = {"const": cls.command}
    required = ["command"]
    for each in dataclasses.fields(cls):
        kind = hints[each.name]
        if kind is Endpoints:
            for sub in dataclasses.fields(Endpoints):
                properties[sub.name] = _type_schema(typing.get_type_hints(Endpoints)[sub.name])
                required.append(sub.name)
            continue
        if cls is RawResult and each.name == "first":  # flattened: the first probe's fields
            first = _object_schema(RawProbe)
            properties.update({k: v for k, v in first["properties"].items() if k != "command"})
            required += [k for k in first["required"] if k != "command"]
            continue
        properties[each.name] = _type_schema(kind)
        if each.default is dataclasses.MISSING:
            required.append(each.name)
    return {"type": "object", "required": required, "properties": properties}


def _type_schema(kind: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_type_schema(arg) for arg in args]}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(args[0])}
    if kind is Result:  # any result (a demo's exchanges, a repeat's last)
        return {"anyOf": [{"$ref": f"#/$defs/{cls.__name__}"} for cls in RESULTS]}
    if isinstance(kind, type) and issubclass(kind, Result):
        return {"$ref": f"#/$defs/{kind.__name__}"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    return {"type": simple[kind]} if kind in simple else {}
