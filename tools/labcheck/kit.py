"""The conformance kit: a program under test in a container of its own on a lab network, graded
across real hosts, with a verdict per case and a hint for a learner on each failure.

The program is untrusted. It runs hardened as the lab's own services are (non-root, read-only
root, every capability dropped, no new privileges, PROGRAM_LIMITS on processes, memory and CPU,
its output rotated at 1 MiB), publishes nothing, and its network is internal: it reaches the
kit's containers and nothing else. Every wait has a bound; the probes share CHECK_WITHIN_S;
and everything the check made carries one label and is swept at the end, whatever happened
(``labstack.lifecycle``).

    server: holder  (owns the network namespace: a restarted program keeps its address, and its
      |              sockets' TIME_WAIT, so "reusable at once" means something)
      +-- program   (network_mode container:holder)
      +-- tcpdump   (the same namespace, for the captures of failed cases)
    probers (client image, python3 -m labprobe): the cases, from other hosts

    client: a proving server per case (python3 -m labprobe prove ...), the client run against it
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
from docker.models.containers import Container
from lab import registry
from labprobe import cases
from labstack.clients import BackgroundExec, capture_in, exec_bounded
from labstack.lifecycle import Lifecycle
from labstack.stack import NotYet, StackError, random_ula_subnet, require_images, wait_for

from . import sockets
from .report import Report

CHECK_LABEL = "org.sockets-lab.check"
DOCKER_DNS = "127.0.0.11"
CHECK_WITHIN_S = 60  # what the probes of one check wait, in all
CLIENT_WITHIN_S = 15  # one run of a client under test
LISTEN_WITHIN_S = 10  # a server under test must listen this soon after it starts
STOP_WITHIN_S = 10  # SIGTERM must end a server within this
HOLD_WITHIN_S = 40  # a client holding a connection (labprobe hold reads for 30 s at most)
PROVE_WITHIN_S = CLIENT_WITHIN_S + 30  # a proving server: its wait to listen, then one client
PROGRAM_LIMITS: dict[str, Any] = {
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "user": "10001:10001",
    "pids_limit": 32,
    "mem_limit": "128m",
    "nano_cpus": 1_000_000_000,
    "tmpfs": {"/tmp": "size=16m"},  # noqa: S108 (the container's own tmpfs)
    "log_config": docker.types.LogConfig(
        type="json-file", config={"max-size": "1m", "max-file": "1"}
    ),
}
KIT_LIMITS: dict[str, Any] = {  # the kit's own containers: a hostile peer cannot grow them far
    "pids_limit": 64,
    "mem_limit": "512m",
}
OUTPUT_KEPT = 4096  # of a program's output, the tail a report quotes
PROTOCOLS = {
    "echo": ("tcp-echo", "tcp"),
    "udp": ("udp-echo", "udp"),
    "greet": ("greeting", "tcp"),
    "app": ("app", "tcp"),
}
DEFAULT_PORTS = {name: registry.default_port(row) for name, (row, _) in PROTOCOLS.items()}


class KitError(Exception):
    """The kit could not run the program at all (exit status 2): one line says why."""


@dataclass
class Program:
    """What to run: a Python file (in the lab's Python image) or any image, with arguments."""

    path: Path | None = None
    image: str | None = None
    args: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name if self.path else str(self.image)

    def container_options(self, lab_image: str) -> dict[str, Any]:
        if self.path is not None:
            if not self.path.is_file():
                raise KitError(f"no such program: {self.path}")
            inside = f"/program/{self.path.name}"
            return {
                "image": lab_image,
                "entrypoint": ["python3", inside],
                "command": self.args,
                "volumes": {str(self.path.resolve()): {"bind": inside, "mode": "ro"}},
                "environment": {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
            }
        return {"image": self.image, "command": self.args or None}


class Bench(Lifecycle):
    """A network of the check's own (internal, IPv4 and IPv6) and the containers on it."""

    def __init__(self, image_tag: str = "latest") -> None:
        self.run_id = uuid.uuid4().hex[:10]
        self.project = f"labcheck-{self.run_id}"
        self.label = f"{CHECK_LABEL}={self.run_id}"
        self.image_tag = image_tag
        self.docker = docker.from_env(timeout=60)
        self.network_name = self.project
        self.deadline = 0.0
        self.names: dict[str, str] = {}  # addresses' labels, for the ladders of failed cases
        self._prober: Container | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {CHECK_LABEL: self.run_id}

    def image(self, name: str) -> str:
        return f"sockets-lab/{name}:{self.image_tag}"

    def start(self) -> None:
        self.deadline = time.monotonic() + CHECK_WITHIN_S
        require_images(self.docker, ("client", "tools"), self.image_tag)
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=random_ula_subnet())]
        )
        self.docker.networks.create(
            self.network_name,
            driver="bridge",
            internal=True,
            enable_ipv6=True,
            ipam=ipam,
            labels=self.labels,
        )

    def stop(self) -> None:
        self.sweep()

    def logs(self) -> str:
        return ""

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, command: list[str], image: str = "client", **options: Any) -> Container:
        """A labelled container of the lab's ``image`` on the check's network, hardened."""
        network = {} if "network_mode" in options else {"network": self.network_name}
        return self.docker.containers.run(
            self.image(image),
            command,
            detach=True,
            labels=self.labels,
            **{
                "read_only": True,
                "cap_drop": ["ALL"],
                "user": "10001:10001",
                "security_opt": ["no-new-privileges:true"],
                **KIT_LIMITS,
                **network,
                **options,
            },
        )

    def prober(self) -> Container:
        """The kit's client host: one container on the check's network, in which each probe
        runs (``exec_bounded``)."""
        if self._prober is None:
            self._prober = self.run(["infinity"], entrypoint=["sleep"], init=True)
        return self._prober

    def probe(self, *args: str, timeout_s: float = 30) -> list[dict[str, Any]]:
        """``python3 -m labprobe ARGS`` on the kit's client host, stopped (SIGKILL) after
        ``timeout_s`` or when the check's time is up; its JSON lines, those it printed by then."""
        limit = round(max(1.0, min(timeout_s, self.left() + 5)), 1)
        _, output, _ = exec_bounded(self.prober(), ["python3", "-m", "labprobe", *args], limit)
        return [json.loads(line) for line in output.splitlines() if line.startswith("{")]

    def namespace(self) -> Container:
        """A container that only holds a network namespace: what runs in it (a program, a
        proving server, tcpdump) keeps one address across restarts."""
        return self.run(["-c", "import time; time.sleep(3600)"], entrypoint=["python3"])

    def address(self, container: Container, version: int) -> str:
        container.reload()
        net = container.attrs["NetworkSettings"]["Networks"][self.network_name]
        return str(net["IPAddress"] if version == 4 else net["GlobalIPv6Address"])

    @contextlib.contextmanager
    def capture(self, target: Container, report: Report) -> Iterator[dict[str, bytes]]:
        """The check's capture: an aid to reading failed cases, not part of their verdicts,
        so packets tcpdump dropped (a busy machine) are a note in ``report``, not an error."""
        with capture_in(self.docker, target, self.image_tag, self.labels, whole=False) as result:
            yield result
        if result.lost:
            report.notes.append(f"{result.lost}: the failed cases' captures may miss packets")


def tail(container: Container) -> str:
    """The end of what a program printed (bounded: its log rotates at 1 MiB)."""
    try:
        text = container.logs(tail=50).decode(errors="replace")
    except docker.errors.APIError:
        return ""
    return text[-OUTPUT_KEPT:].strip()


def _state(container: Container) -> dict[str, Any]:
    with contextlib.suppress(docker.errors.APIError):
        container.reload()
    return dict(container.attrs.get("State", {}))


def what_ended(container: Container) -> str:
    """Why a program's container is not running, in words (OOM, a signal, its exit status)."""
    state = _state(container)
    if state.get("Running"):
        try:
            processes = len(container.top()["Processes"] or [])
        except docker.errors.APIError:
            return "still running"
        limit = PROGRAM_LIMITS["pids_limit"]
        if processes >= limit - 1:
            return f"still running, with {processes} processes: at its limit of {limit}"
        return f"still running ({processes} process{'es' if processes > 1 else ''})"
    if state.get("OOMKilled"):
        return f"killed: out of memory (its limit is {PROGRAM_LIMITS['mem_limit']})"
    code = state.get("ExitCode")
    last = [line.strip() for line in tail(container).splitlines() if line.strip()]
    return f"exited with status {code}" + (f" ({last[-1][:200]})" if last else "")


# -- a server under test -------------------------------------------------------------------------
BENIGN = (
    "echo.small",
    "echo.large",
    "echo.bytewise",
    "echo.half-close",
    "echo.close-seen",
    "echo.two-clients",
    "echo.fifty-clients",
    "echo.idle-client",
    "udp.echo",
    "udp.empty",
    "udp.largest",
    "udp.sources",
    "greet.line",
    "app.search",
    "app.binary",
    "app.split-anywhere",
    "app.pipelining",
    "app.second-request",
    "app.actions",
)
DESTRUCTIVE = ("echo.reset-then-next", "app.bad-frames")  # each alone, the server checked after
CASE_TEXT = {  # the kit's own cases: what each checks, and the hint when it fails
    "server.listening": (
        f"the program listens on a port it serves within {LISTEN_WITHIN_S} s of starting",
        "a server must bind() and listen() on its port (echo 65432/tcp, or say where with "
        "PORT_ECHO=...) soon after it starts; the note above says what became of it",
    ),
    "reach.ipv4": (
        "listening on an address other hosts reach, over IPv4",
        "a server bound to 127.0.0.1 is reachable only from its own host: bind to "
        "'0.0.0.0' (all IPv4 addresses), or '::' with IPV6_V6ONLY off for both",
    ),
    "reach.ipv6": (
        "listening on an address other hosts reach, over IPv6",
        "bind an AF_INET6 socket to '::' (socket.create_server(addr, "
        "family=AF_INET6, dualstack_ipv6=True) takes IPv4 too)",
    ),
    "echo.slow-reader": (
        "a client that never reads neither blocks others nor grows the server",
        "stop reading from a peer that does not read your replies (do not "
        "buffer its echo without bound), and serve the others meanwhile",
    ),
    "server.sigterm": (
        f"SIGTERM ends the server within {STOP_WITHIN_S} s",
        "in a container your program is PID 1, and PID 1 ignores SIGTERM unless "
        "it handles it: signal.signal(signal.SIGTERM, ...)",
    ),
    "server.port-reuse": (
        "the port is reusable at once after a restart",
        "set SO_REUSEADDR before bind(): the old connections' TIME_WAIT keep "
        "the port otherwise (socket.create_server does it for you)",
    ),
}
SERVER_ORDER = [  # how a report lists a server's cases: by protocol, then the life cycle
    "server.listening",
    "reach.ipv4",
    "reach.ipv6",
    *[c.id for c in cases.CASES if c.protocol == "echo"],
    "echo.slow-reader",
    *[c.id for c in cases.CASES if c.protocol != "echo"],
    "server.sigterm",
    "server.port-reuse",
]


def selection(patterns: tuple[str, ...], ids: Iterable[str]) -> tuple[str, ...]:
    """``CASES=``'s patterns (``reach.*,echo.small``), each checked against the case ids: a
    pattern that matches nothing is a typo, said at once rather than graded as nothing."""
    known = list(ids)
    for pattern in patterns:
        if not fnmatch.filter(known, pattern):
            raise KitError(f"no case matches {pattern!r} (the cases: {', '.join(known)})")
    return patterns


SLOW_READER_GROWTH = 2 << 20  # a server that grows more than this for one slow reader fails


class ServerCheck(Bench):
    def __init__(
        self,
        program: Program,
        protocols: list[str] | None = None,
        ports: dict[str, int] | None = None,
        image_tag: str = "latest",
        only: tuple[str, ...] = (),
    ) -> None:
        only = selection(only, SERVER_ORDER)  # a typo is said before the engine is asked
        super().__init__(image_tag)
        self.program = program
        self.claimed = protocols
        self.ports = {**DEFAULT_PORTS, **(ports or {})}
        self.report = Report(program.name, "server", [], run=self.run_id, only=only)
        self.holder: Container | None = None
        self.server: Container | None = None
        self.pcap = b""

    def start(self) -> None:
        super().start()
        options = self.program.container_options(self.image("client"))
        image = options.pop("image")
        try:
            self.docker.images.get(image)
        except docker.errors.ImageNotFound:
            raise KitError(
                f"no image {image} here (docker build or docker pull it first)"
            ) from None
        self.holder = self.namespace()
        self.server = self.docker.containers.create(
            image,
            detach=True,
            labels=self.labels,
            network_mode=f"container:{self.holder.id}",
            **{**PROGRAM_LIMITS, **options},
        )
        self.server.start()

    # -- the socket table --------------------------------------------------------------------
    def bound(self) -> list[sockets.Bound]:
        assert self.holder is not None
        # Read in the holder, whose network namespace the program shares (/proc/net/* is the
        # namespace's): an exec costs a tenth of a container of its own (0.05 CPU-s against
        # 0.5 here), and wait_listening() reads it every 0.3 s.
        _, output = self.holder.exec_run(
            [
                "sh",
                "-c",
                'for t in tcp tcp6 udp udp6; do echo "== $t"; cat /proc/net/$t 2>/dev/null; done',
            ],
            stderr=False,
        )
        text = output.decode(errors="replace")
        tables = {
            part.split("\n", 1)[0].strip(): part.split("\n", 1)[1]
            for part in text.split("== ")[1:]
            if "\n" in part
        }
        # Docker's embedded DNS resolver listens in every container's namespace: not ours.
        return [b for b in sockets.parse(tables) if b.address != DOCKER_DNS]

    def wait_listening(self) -> list[sockets.Bound]:
        """The socket table once the ports the program should serve are open, or some of them
        and no more for a while (``sockets.Settling``; at most LISTEN_WITHIN_S in all), or as
        it is then."""
        assert self.server is not None
        server = self.server
        # After the first reading (a restart), what it served then; before, what it claims.
        expected = self.report.protocols or self.claimed
        settling = sockets.Settling(
            {
                (PROTOCOLS[p][1], port)
                for p, port in self.ports.items()
                if expected is None or p in expected
            }
        )

        def listening() -> list[sockets.Bound]:
            found = self.bound()
            if _state(server).get("Running"):
                why = settling.wait_reason({(b.kind, b.port) for b in found})
                if why is not None:
                    raise NotYet(why)
            return found

        try:
            found: list[sockets.Bound] = wait_for(
                "the program to listen", listening, LISTEN_WITHIN_S, every_s=0.3
            )
            return found
        except StackError:
            return self.bound()

    def ensure_running(self) -> str:
        """Start the program again if a case killed it; what happened to it, or ""."""
        assert self.server is not None
        if _state(self.server).get("Running"):
            return ""
        ended = what_ended(self.server)
        self.server.start()
        self.wait_listening()
        return ended

    # -- the check ---------------------------------------------------------------------------
    def grade(self) -> Report:
        report = self.report
        assert self.server is not None and self.holder is not None
        started, clock = time.time(), time.monotonic()
        bound = self.wait_listening()
        self._listening(bound, started, time.monotonic() - clock)
        protocols = self.claimed or [
            name
            for name, (_, kind) in PROTOCOLS.items()
            if any(b.kind == kind and b.port == self.ports[name] for b in bound)
        ]
        report.protocols = protocols
        for entry in bound:
            report.notes.append(f"listens on {entry.shown()}/{entry.kind}")
        if not self.claimed:
            report.notes.append(
                "serves (found from its sockets): "
                + (
                    ", ".join(f"{p} on port {self.ports[p]}" for p in protocols)
                    or "none of the lab's ports"
                )
            )
        ipv4, ipv6 = self.address(self.holder, 4), self.address(self.holder, 6)
        label = f"your program ({self.program.name})\n{ipv4}  {ipv6}"
        self.names = {ipv4: label, ipv6: label}
        reachable = self._reachability(bound, protocols, ipv4, ipv6)
        with self.capture(self.holder, report) as captured:
            self._cases(protocols, reachable)
        self.pcap = captured.get("pcap", b"")
        report.cases.sort(key=lambda case: SERVER_ORDER.index(case["id"]))
        return report

    def _listening(self, bound: list[sockets.Bound], started: float, took: float) -> None:
        """server.listening: one of the ports it serves is open within LISTEN_WITHIN_S."""
        assert self.server is not None
        expected, hint = CASE_TEXT["server.listening"]
        wanted = {
            (PROTOCOLS[p][1], port)
            for p, port in self.ports.items()
            if self.claimed is None or p in self.claimed
        }
        ours = [b for b in bound if (b.kind, b.port) in wanted]
        if ours:
            observed, verdict = (
                "listening on " + ", ".join(f"{b.shown()}/{b.kind}" for b in ours),
                "pass",
            )
        else:
            where = ", ".join(f"{b.shown()}/{b.kind}" for b in bound)
            observed = (
                f"after {LISTEN_WITHIN_S} s it listens on "
                + (f"none of the ports it should serve (only {where})" if where else "nothing")
                + f"; the program: {what_ended(self.server)}"
            )
            verdict = "fail"
            self.report.notes.append(f"the program listens on nothing: {what_ended(self.server)}")
        self.report.add(
            {
                "id": "server.listening",
                "verdict": verdict,
                "expected": expected,
                "observed": observed,
                "hint": hint if verdict == "fail" else "",
                "duration_s": round(took, 3),
                "started": started,
            }
        )

    def _reachability(
        self, bound: list[sockets.Bound], protocols: list[str], ipv4: str, ipv6: str
    ) -> dict[str, str]:
        """The reach.* cases, from real connections made from another host (a socket table
        alone cannot tell an IPv6 wildcard with IPV6_V6ONLY from one without); the table
        explains a failure. Returns where the cases reach each protocol that another host
        can reach: over IPv4, or over IPv6 for a server that takes only IPv6."""
        tcp = [p for p in protocols if PROTOCOLS[p][1] == "tcp"]
        outcome: dict[str, dict[str, str]] = {}
        if tcp:
            ports = json.dumps({p: self.ports[p] for p in tcp})
            for line in self.probe("reach", ipv4, ipv6, ports, timeout_s=20):
                outcome[line["protocol"]] = line
        where = {
            p: [b.shown() for b in bound if b.kind == "tcp" and b.port == self.ports[p]]
            for p in tcp
        }
        for version in ("ipv4", "ipv6"):
            case_id = f"reach.{version}"
            expected, hint = CASE_TEXT[case_id]
            if not tcp:
                self.report.not_applicable(case_id, expected, "no TCP protocol to reach")
                continue
            seen = {p: outcome.get(p, {}).get(version, "no answer") for p in tcp}
            blocked = [p for p, result in seen.items() if result != "ok"]
            observed = "; ".join(
                f"{p} (port {self.ports[p]}): "
                + ("connected" if seen[p] == "ok" else seen[p])
                + f", listening on {', '.join(where[p]) or 'nothing'}"
                for p in tcp
            )
            loopback_only = [
                p
                for p in blocked
                if where[p]
                and all(b.loopback for b in bound if b.kind == "tcp" and b.port == self.ports[p])
            ]
            if loopback_only:
                observed += "; bound to loopback only: no other host can reach it"
            elif version == "ipv4" and any(
                b.ipv6 and b.wildcard
                for p in blocked
                for b in bound
                if b.kind == "tcp" and b.port == self.ports[p]
            ):
                observed += (
                    "; its IPv6 socket is IPv6-only (IPV6_V6ONLY): asyncio and "
                    "socket.create_server set it unless told otherwise"
                )
            self.report.add(
                {
                    "id": case_id,
                    "verdict": "fail" if blocked else "pass",
                    "expected": expected,
                    "observed": observed,
                    "hint": hint if blocked else "",
                    "duration_s": 0.0,
                }
            )
        hosts = {p: ipv4 for p in protocols if PROTOCOLS[p][1] == "udp"}
        for p in tcp:
            if outcome.get(p, {}).get("ipv4") == "ok":
                hosts[p] = ipv4
            elif outcome.get(p, {}).get("ipv6") == "ok":
                hosts[p] = ipv6
                self.report.notes.append(f"{p}: IPv4 unreachable, so its cases run over IPv6")
        return hosts

    def _cases(self, protocols: list[str], reachable: dict[str, str]) -> None:
        ports = json.dumps({p: self.ports[p] for p in protocols})
        hosts = json.dumps(reachable)
        runnable = [
            c
            for c in (*BENIGN, *DESTRUCTIVE)
            if cases.by_id(c).protocol in reachable and self.report.selected(c)
        ]
        for case in cases.CASES:
            if case.id not in runnable:
                why = (
                    "not served"
                    if case.protocol not in protocols
                    else "unreachable: see reach.ipv4 and reach.ipv6"
                )
                self.report.not_applicable(case.id, case.expected, why)
        batch = [c for c in runnable if c in BENIGN]
        if batch:
            self._record(
                self.probe("server", hosts, ports, ",".join(batch), timeout_s=self.left()),
                batch,
            )
        for case_id in [c for c in runnable if c in DESTRUCTIVE]:
            died = self.ensure_running()
            if died:
                self.report.notes.append(f"before {case_id}: the program had {died}; started again")
            self._record(
                self.probe("server", hosts, ports, case_id, timeout_s=self.left()), [case_id]
            )
        died = self.ensure_running()
        if died:
            self.report.notes.append(f"after the cases the program had {died}; started again")
        tcp = [p for p in protocols if PROTOCOLS[p][1] == "tcp" and p in reachable]
        if "echo" in reachable and self.report.selected("echo.slow-reader"):
            self._slow_reader(reachable["echo"])
        elif "echo" not in reachable:  # (an unselected case is dropped by the report)
            expected, _ = CASE_TEXT["echo.slow-reader"]
            self.report.not_applicable(
                "echo.slow-reader",
                expected,
                "not served" if "echo" not in protocols else "unreachable",
            )
        if self.report.selected("server.sigterm") or self.report.selected("server.port-reuse"):
            self._lifecycle(tcp[0] if tcp else None, reachable)

    def _record(self, verdicts: list[dict[str, Any]], wanted: list[str]) -> None:
        got = {v["id"]: v for v in verdicts}
        for case_id in wanted:
            if case_id in got:
                self.report.add(got[case_id])
            else:
                case = cases.by_id(case_id)
                self.report.add(
                    {
                        "id": case_id,
                        "verdict": "fail",
                        "expected": case.expected,
                        "observed": "no verdict: the check ran out of time",
                        "hint": case.hint,
                        "duration_s": 0.0,
                    }
                )

    def _memory(self) -> int:
        """The program's resident memory: its main process and its descendants, from the
        engine's `docker top` (not the cgroup's usage, which counts the kernel's socket buffers,
        nor an image's health check, which runs beside the program)."""
        assert self.server is not None
        main = str(_state(self.server).get("Pid"))
        top = self.server.top(ps_args="-eo pid,ppid,rss")
        pid, ppid, rss = (top["Titles"].index(t) for t in ("PID", "PPID", "RSS"))
        rows = top["Processes"] or []
        tree, grew = {main}, True
        while grew:  # the main process, then its children, their children...
            grew = False
            for row in rows:
                if row[ppid] in tree and row[pid] not in tree:
                    tree.add(row[pid])
                    grew = True
        return sum(int(row[rss]) for row in rows if row[pid] in tree) * 1024

    def _slow_reader(self, host: str) -> None:
        expected, hint = CASE_TEXT["echo.slow-reader"]
        started, clock = time.time(), time.monotonic()
        before = self._memory()
        peak = [before]
        sampling = threading.Event()

        def sample() -> None:  # the server's memory while the slow reader sends
            while not sampling.wait(0.2):
                with contextlib.suppress(Exception):
                    peak.append(self._memory())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            lines = self.probe("slow-reader", host, str(self.ports["echo"]), timeout_s=30)
        finally:
            sampling.set()
            sampler.join(5)
        outcome = lines[-1] if lines else {}
        grew = max(peak) - before
        observed = (
            f"a client sent {outcome.get('sent', 0) >> 10} KiB without reading; the "
            f"server grew {max(0, grew) >> 10} KiB; another client was "
            + ("served" if outcome.get("other_served") else "NOT served")
            + f" ({outcome.get('other_waited_s', '?')} s)"
        )
        ok = outcome.get("other_served") and grew <= SLOW_READER_GROWTH
        self.report.add(
            {
                "id": "echo.slow-reader",
                "verdict": "pass" if ok else "fail",
                "expected": expected,
                "observed": observed,
                "hint": "" if ok else hint,
                "duration_s": round(time.monotonic() - clock, 3),
                "started": started,
            }
        )

    def _lifecycle(self, protocol: str | None, hosts: dict[str, str]) -> None:
        """SIGTERM, then a restart in the same network namespace (with a connection the
        server had open now in TIME_WAIT)."""
        assert self.server is not None
        sigterm_expected, sigterm_hint = CASE_TEXT["server.sigterm"]
        reuse_expected, reuse_hint = CASE_TEXT["server.port-reuse"]
        if protocol is None:
            self.report.not_applicable("server.sigterm", sigterm_expected, "nothing to reach")
            self.report.not_applicable("server.port-reuse", reuse_expected, "nothing to reach")
            return
        holder = (  # a client holding a connection, on the kit's client host
            BackgroundExec(
                self.prober(),
                ["python3", "-m", "labprobe", "hold", hosts[protocol], str(self.ports[protocol])],
                HOLD_WITHIN_S,
            )
            if protocol == "echo"
            else None
        )
        with contextlib.suppress(StackError):
            if holder is not None:
                holder.wait_for_output("holding", 10)
        started, clock = time.time(), time.monotonic()
        self.server.stop(timeout=STOP_WITHIN_S)
        took = time.monotonic() - clock
        code = _state(self.server).get("ExitCode")
        killed = code == 137 or took >= STOP_WITHIN_S
        self.report.add(
            {
                "id": "server.sigterm",
                "verdict": "fail" if killed else "pass",
                "expected": sigterm_expected,
                "observed": (f"still running {STOP_WITHIN_S} s after SIGTERM: killed (SIGKILL)")
                if killed
                else f"exited with status {code}, {took:.1f} s after SIGTERM",
                "hint": sigterm_hint if killed else "",
                "duration_s": round(took, 3),
                "started": started,
            }
        )
        if holder is not None:
            holder.wait(5)
            holder.stop()
        started, clock = time.time(), time.monotonic()
        self.server.start()
        bound = self.wait_listening()
        port_back = any(b.port == self.ports[protocol] for b in bound)
        self.report.add(
            {
                "id": "server.port-reuse",
                "verdict": "pass" if port_back else "fail",
                "expected": reuse_expected,
                "observed": (
                    f"listening again on port {self.ports[protocol]} "
                    f"{time.monotonic() - clock:.1f} s after starting"
                )
                if port_back
                else f"not listening again: {what_ended(self.server)}",
                "hint": "" if port_back else reuse_hint,
                "duration_s": round(time.monotonic() - clock, 3),
                "started": started,
            }
        )


# -- a client under test -------------------------------------------------------------------------
PROVING_PORT = DEFAULT_PORTS["echo"]
CLIENT_CASES: dict[str, tuple[str, str, str]] = {  # id: (behaviour, what it checks, hint)
    "client.reaches-server": (
        "coalesced",
        "the client connects to the server it is given (argv[1] or LAB_HOST)",
        "a client that connects to 127.0.0.1 talks to its own container: take the server's "
        "host from argv[1] or LAB_HOST",
    ),
    "client.segments": (
        "segments",
        "the whole reply is assembled from small segments that arrive with pauses",
        "TCP is a byte stream: one recv() returns what has arrived so far; loop until you "
        "have the whole reply (or the server closes)",
    ),
    "client.late-accept": (
        "late-accept",
        "a server that accepts a second late is waited for",
        "connect() may succeed before the server accepts: keep reading",
    ),
    "client.half-close": (
        "half-close",
        "a server that half-closes after replying ends the exchange",
        "recv() returning b'' means the server is done: stop reading and print what you have",
    ),
    "client.reset-after-reply": (
        "reset-after-reply",
        "a reset after the whole reply is not a failure",
        "a reset (ConnectionResetError) after the reply has arrived loses nothing: catch it "
        "and keep what you got",
    ),
    "client.sendall": (
        "slow-reader",
        "a large message reaches a server that reads slowly (sendall, not send)",
        "send() may take only part of what you give it; sendall() loops until all is sent",
    ),
    "client.server-silent": (
        "silent",
        f"a server that never answers makes the client give up (within "
        f"{CLIENT_WITHIN_S} s), not hang",
        "set a timeout (socket.settimeout, or "
        "create_connection(..., timeout=...)) and exit with an error when it passes",
    ),
    "client.server-down": (
        "",
        "no server at all: a clear error and a non-zero exit status, no traceback",
        "catch ConnectionRefusedError (an OSError): print one line saying the server is not "
        "there, and exit with a non-zero status",
    ),
}


@dataclass
class ClientRun:
    exit_code: int | None  # None: it had to be killed
    output: str
    seconds: float


class ClientCheck(Bench):
    """A client under test against proving servers. ``program.args`` is a template: ``{host}``
    and ``{message}`` are filled in (the default: ``{host} {message}``, the tutorial's
    ``client.py HOST MESSAGE``)."""

    def __init__(
        self, program: Program, image_tag: str = "latest", only: tuple[str, ...] = ()
    ) -> None:
        only = selection(only, CLIENT_CASES)  # a typo is said before the engine is asked
        super().__init__(image_tag)
        self.program = program
        self.report = Report(program.name, "client", ["echo"], run=self.run_id, only=only)
        self.template = program.args or ["{host}", "{message}"]
        self.holder: Container | None = None
        self.pcap = b""

    def start(self) -> None:
        super().start()
        options = self.program.container_options(self.image("client"))
        try:
            self.docker.images.get(options["image"])
        except docker.errors.ImageNotFound:
            raise KitError(f"no image {options['image']} here") from None
        self.holder = self.namespace()  # the proving servers' host, one after another

    def run_client(self, host: str, message: str) -> ClientRun:
        options = self.program.container_options(self.image("client"))
        image = options.pop("image")
        filled = [
            part.replace("{host}", host).replace("{message}", message) for part in self.template
        ]
        options["command"] = filled
        environment = {**options.pop("environment", {}), "LAB_HOST": host}
        started = time.monotonic()
        container = self.docker.containers.run(
            image,
            detach=True,
            labels=self.labels,
            network=self.network_name,
            environment=environment,
            **{**PROGRAM_LIMITS, **options},
        )
        try:
            code: int | None = container.wait(timeout=CLIENT_WITHIN_S)["StatusCode"]
        except Exception:
            code = None
            container.kill()
        output = container.logs(stdout=True, stderr=True)[-(256 << 10) :].decode(errors="replace")
        container.remove(force=True)
        return ClientRun(code, output, time.monotonic() - started)

    def grade(self) -> Report:
        assert self.holder is not None
        with self.capture(self.holder, self.report) as captured:
            self._grade()
        self.pcap = captured.get("pcap", b"")
        return self.report

    def _grade(self) -> None:
        assert self.holder is not None
        host = self.address(self.holder, 4)
        self.names = {host: f"the kit's proving server\n{host}"}
        reached = True
        for case_id, (behaviour, expected, hint) in CLIENT_CASES.items():
            if not self.report.selected(case_id):
                continue
            if not reached and case_id != "client.server-down":
                self.report.not_applicable(
                    case_id,
                    expected,
                    "the client never reached the server: see client.reaches-server",
                )
                continue
            if self.left() <= CLIENT_WITHIN_S:
                self.report.not_applicable(case_id, expected, "the check ran out of time")
                continue
            started, clock = time.time(), time.monotonic()
            verdict, observed = self._case(host, behaviour)
            self.report.add(
                {
                    "id": case_id,
                    "verdict": verdict,
                    "expected": expected,
                    "observed": observed,
                    "hint": hint if verdict == "fail" else "",
                    "duration_s": round(time.monotonic() - clock, 3),
                    "started": started,
                }
            )
            if case_id == "client.reaches-server" and verdict == "fail":
                reached = False

    def _case(self, host: str, behaviour: str) -> tuple[str, str]:
        tag = secrets.token_hex(4)
        message = f"sockets lab says hello {tag}"
        if behaviour == "slow-reader":
            message = (f"{tag} " + "abcdefghijklmnopqrstuvwxyz" * 4000)[:100_000]
        if not behaviour:  # server-down: the proving host, with nothing listening
            run = self.run_client(host, message)
            if run.exit_code is None:
                return "fail", f"still running after {CLIENT_WITHIN_S} s (killed)"
            if run.exit_code == 0 or "Traceback" in run.output:
                return "fail", (
                    f"exit status {run.exit_code}"
                    + ("; a traceback instead of a message" if "Traceback" in run.output else "")
                    + f": {_last(run.output)}"
                )
            return "pass", f"exit status {run.exit_code}: {_last(run.output)}"
        assert self.holder is not None
        # in the proving host's namespace, by exec: one proving server after another, each
        # gone (stop) before the next binds the port
        prover = BackgroundExec(
            self.holder,
            ["python3", "-m", "labprobe", "prove", behaviour, str(PROVING_PORT)],
            PROVE_WITHIN_S,
        )
        try:
            prover.wait_for_output("listening", 15)
            run = self.run_client(host, message)
            prover.wait(2 if behaviour != "silent" else 1)
            lines = [
                json.loads(line) for line in prover.output.splitlines() if line.startswith("{")
            ]
        finally:
            prover.stop()
        saw = lines[-1] if lines else {}
        if not saw.get("connected"):
            return "fail", (
                "no connection reached the server ("
                + (
                    "the client hung"
                    if run.exit_code is None
                    else f"the client exited with {run.exit_code}"
                )
                + f"): {_last(run.output)}"
            )
        if behaviour == "silent":
            if run.exit_code is None:
                return "fail", f"still waiting after {CLIENT_WITHIN_S} s (killed)"
            if run.exit_code == 0:
                return "fail", "exit status 0 although no reply came"
            return "pass", f"gave up after {run.seconds:.1f} s with exit status {run.exit_code}"
        if behaviour == "slow-reader" and saw.get("received", 0) < len(message):
            return "fail", (
                f"the server received {saw.get('received')} of {len(message)} bytes of the message"
            )
        if run.exit_code != 0 or message not in run.output:
            got = "has the whole reply" if message in run.output else "lacks the whole reply"
            state = (
                "killed after hanging"
                if run.exit_code is None
                else (f"exit status {run.exit_code}")
            )
            return "fail", f"{state}; its output {got}: {_last(run.output)}"
        return "pass", f"exit status 0, the whole reply in its output ({run.seconds:.1f} s)"


def _last(output: str, limit: int = 200) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else "(no output)"
    return text if len(text) <= limit else text[:limit] + "..."
