"""One-off containers beside a stack: clients, test peers and tools, on the stack's network,
hardened as ``compose.yaml`` hardens its services (read from the compose model, not copied)."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.types
import dpkt
import jsonschema
from docker.models.containers import Container

from .capture import conversations, lacking_exchanges, read
from .lifecycle import tcpdump_command, tcpdump_dropped
from .stack import ROOT, NotYet, Stack, StackError, wait_for

KILLED = 128 + 9  # timeout(1)'s status when it had to SIGKILL what it ran
# compose.yaml's service keys that harden a container, by the Docker SDK's name for each.
CAPTURE_FILE = "/tmp/capture.pcap"  # noqa: S108 (inside the capture helper)
HARDENING_KEYS = {
    "read_only": "read_only",
    "cap_drop": "cap_drop",
    "security_opt": "security_opt",
    "user": "user",
    "pids_limit": "pids_limit",
    "mem_limit": "mem_limit",
    "ulimits": "ulimits",
}


@dataclass
class ClientResult:
    """What a one-off client container did: its exit status, its JSON result, its output."""

    exit_code: int
    stdout: str
    stderr: str
    data: dict = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(f"client result has no {name!r}; it was: {self}") from None

    def __str__(self) -> str:
        return (
            f"exit {self.exit_code}; stdout: {self.stdout.strip()[-2000:]!r}; "
            f"stderr: {self.stderr.strip()[-2000:]!r}"
        )


class ClientRun:
    """A one-off container started in the background; ``wait()`` collects its result. For a
    ``labclient ... --json`` run (``client_json``), its JSON line must match the client's
    schema (docs/client-result.schema.json): the line is a contract, checked every time."""

    def __init__(self, container: Container, client_json: bool = False) -> None:
        self.container = container
        self.client_json = client_json

    def logs(self) -> str:
        return self.container.logs(stdout=True, stderr=True).decode(errors="replace")

    def wait(self, timeout_s: float = 120) -> ClientResult:
        try:
            status = self.container.wait(timeout=timeout_s)
        except Exception as exc:  # requests' ReadTimeout, or the engine went away
            raise StackError(
                f"client {self.container.short_id} did not finish within "
                f"{timeout_s:g}s ({exc}); output so far: {self.logs()[-2000:]}"
            ) from None
        stdout = self.container.logs(stdout=True, stderr=False).decode(errors="replace")
        stderr = self.container.logs(stdout=False, stderr=True).decode(errors="replace")
        return client_result(status["StatusCode"], stdout, stderr, self.client_json)


def client_result(exit_code: int, stdout: str, stderr: str, client_json: bool) -> ClientResult:
    """A client's result from its output: the last line's JSON, checked against the client's
    schema when it ran with ``--json`` (``client_json``)."""
    data: dict = {}
    lines = stdout.strip().splitlines()
    if lines:
        with contextlib.suppress(json.JSONDecodeError):
            data = json.loads(lines[-1])
    if client_json:
        errors = sorted(client_schema().iter_errors(data), key=lambda e: e.path)
        if errors:
            raise StackError(
                f"the client's JSON line breaks docs/client-result.schema.json"
                f": {errors[0].message} (at {list(errors[0].path)}); "
                f"stdout: {stdout[-2000:]!r}"
            )
    return ClientResult(exit_code, stdout, stderr, data)


def bounded(command: list[str], timeout_s: float) -> list[str]:
    """``command`` under timeout(1), SIGKILL after ``timeout_s``. ``--foreground``: timeout
    kills the command only, not itself with it, and reaps it."""
    return ["timeout", "--foreground", "--signal=KILL", f"{timeout_s:g}", *command]


def exec_bounded(
    container: Container, command: list[str], timeout_s: float
) -> tuple[int, str, str]:
    """``command`` exec'd in a running ``container`` (a client host), stopped with SIGKILL
    after ``timeout_s``: its status (KILLED when it was stopped), stdout and stderr. An exec
    costs the engine about a third of a container of its own (0.15 CPU-s against 0.5 on a
    2-core machine)."""
    code, (out, err) = container.exec_run(bounded(command, timeout_s), demux=True)
    stdout, stderr = (part.decode(errors="replace") if part else "" for part in (out, err))
    return code, stdout, stderr


class BackgroundExec:
    """``command`` exec'd in a running ``container`` in the background, bounded as
    ``exec_bounded``: its output (stdout and stderr) as it comes, a bounded wait for its end,
    and ``stop``, which ends it and waits until it is gone (so that the next command may bind
    what it bound). A proving server or a held connection for the price of an exec, not of a
    container of its own."""

    PID = 'echo "$$"; exec "$@"'  # sh says its pid, then becomes timeout(1): what stop signals

    def __init__(self, container: Container, command: list[str], timeout_s: float) -> None:
        self.container = container
        self._api = container.client.api
        self._id = self._api.exec_create(
            container.id, ["sh", "-c", self.PID, "sh", *bounded(command, timeout_s)]
        )["Id"]
        self._chunks: list[bytes] = []
        stream = self._api.exec_start(self._id, stream=True)
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: Iterator[bytes]) -> None:
        for chunk in stream:
            self._chunks.append(chunk)

    def _text(self) -> tuple[str, str]:
        pid, _, output = b"".join(self._chunks).decode(errors="replace").partition("\n")
        return pid.strip(), output

    @property
    def output(self) -> str:
        """What the command printed so far."""
        return self._text()[1]

    def wait_for_output(self, text: str, within_s: float) -> str:
        """Wait until it has printed ``text`` (StackError after ``within_s``); the first line
        with ``text`` in it."""

        def printed() -> str:
            for line in self.output.splitlines():
                if text in line:
                    return line
            raise NotYet(f"{text!r} not in its output yet: {self.output[-200:]!r}")

        return wait_for(f"{text!r} from an exec in {self.container.name}", printed, within_s)

    def wait(self, timeout_s: float) -> int | None:
        """Its exit status, once it has ended within ``timeout_s``; None if it is still
        running."""
        self._reader.join(timeout_s)
        if self._reader.is_alive():
            return None
        return int(self._api.exec_inspect(self._id)["ExitCode"])

    def stop(self, within_s: float = 10) -> None:
        """SIGTERM (timeout(1) passes it on to the command), then wait until it has ended."""
        if self.wait(0) is not None:
            return
        pid = self._text()[0]
        if pid.isdigit():
            self.container.exec_run(["sh", "-c", f"kill -TERM {pid} 2>/dev/null"])
        if self.wait(within_s) is None:
            raise StackError(
                f"{self.container.name}: an exec still runs {within_s:g} s after SIGTERM"
            )


@functools.cache
def client_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "docs" / "client-result.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


@contextlib.contextmanager
def capture_in(
    engine: docker.DockerClient,
    target: Container,
    image_tag: str,
    labels: dict[str, str],
    bpf: str = "tcp or udp",
    interface: str = "eth0",
    whole: bool = True,
) -> Iterator[LiveCapture]:
    """tcpdump in ``target``'s network namespace while the block runs (a tools-image helper
    joined to it, labelled ``labels``); the pcap is in the yielded dict's "pcap" afterwards.
    If tcpdump says it dropped packets, that is a StackError when the capture must be
    ``whole``, and otherwise the capture's ``lost``, for the caller to say.
    tcpdump runs as root with CAP_NET_RAW, plus CAP_SETUID/SETGID for its own privilege drop
    (``-Z root``: to root again, so that it need not chown its file to another user)."""
    helper = engine.containers.run(
        f"sockets-lab/tools:{image_tag}",
        [*tcpdump_command(interface, bpf, CAPTURE_FILE), "-Z", "root"],
        detach=True,
        network_mode=f"container:{target.id}",
        user="0:0",
        cap_drop=["ALL"],
        cap_add=["NET_RAW", "SETUID", "SETGID"],
        security_opt=["no-new-privileges:true"],
        labels=labels,
    )
    result = LiveCapture(helper)
    try:

        def listening() -> None:
            if "listening on" not in helper.logs().decode(errors="replace"):
                helper.reload()
                if helper.status != "running":
                    raise StackError(f"tcpdump did not start: {helper.logs().decode()[-1000:]}")
                raise NotYet("tcpdump is not listening yet")

        wait_for("tcpdump to listen", listening, 15)
        yield result
        helper.reload()
        if helper.status != "running":
            raise StackError(f"tcpdump stopped early: {helper.logs().decode()[-1000:]}")
        helper.kill(signal="SIGINT")
        helper.wait(timeout=15)
        result.lost = tcpdump_dropped(helper.logs().decode(errors="replace"))
        if result.lost and whole:
            raise StackError(result.lost)
        result["pcap"] = result.so_far()
    finally:
        helper.remove(force=True)


class LiveCapture(dict[str, bytes]):
    """What ``capture_in`` yields: "pcap" holds the capture once the block has ended. Inside
    the block, ``wait_until`` waits for what tcpdump has written so far to hold something: on a
    busy machine tcpdump lags behind the traffic, and what it has not read when it is stopped
    is lost. What the kernel dropped before tcpdump read it is lost too, and no wait brings it
    back: ``capture_in`` fails when tcpdump says it dropped any (its ring: ``tcpdump_command``),
    and a wait that gives up says whether it had."""

    def __init__(self, helper: Container) -> None:
        super().__init__()
        self.helper = helper
        self.lost: str | None = None  # what tcpdump said it dropped, once stopped

    def so_far(self) -> bytes:
        stream, _ = self.helper.get_archive(CAPTURE_FILE)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            assert member is not None, "the capture is a file"
            return member.read()

    def wait_until(
        self, what: str, lacking: Callable[[bytes], list[str]], within_s: float = 20
    ) -> None:
        """Until what tcpdump has written so far lacks nothing of ``what``: ``lacking(pcap)``
        says what it still lacks, one line each (a record still being written reads as not
        yet); StackError after ``within_s``, saying what was still lacking."""

        def check() -> None:
            try:
                still = lacking(self.so_far())
            except (ValueError, dpkt.Error) as exc:  # the last record is half written
                raise NotYet(f"the capture so far does not read yet ({exc})") from None
            if still:
                raise NotYet(f"the capture lacks {len(still)}: " + "; ".join(still))

        try:
            wait_for(f"the capture to show {what}", check, within_s, every_s=0.2)
        except StackError as exc:
            raise StackError(f"{exc} ({self.dropped() or 'tcpdump dropped nothing'})") from None

    def dropped(self) -> str | None:
        """What tcpdump has lost so far (``tcpdump_dropped``), from the counts it prints on
        SIGUSR1."""
        before = self.helper.logs()
        self.helper.kill(signal="SIGUSR1")

        def counted() -> bytes:
            if (logs := self.helper.logs()) == before:
                raise NotYet("tcpdump has not printed its counts yet")
            return logs

        return tcpdump_dropped(wait_for("tcpdump's counts", counted, 5).decode(errors="replace"))


@functools.cache
def lab_hardening() -> dict[str, Any]:
    """The client service's hardening in the lab's ``compose.yaml``, as Docker SDK options
    (from `docker compose config`, so a change there reaches every one-off container too)."""
    proc = subprocess.run(
        [
            "docker",
            "compose",
            "--project-directory",
            str(ROOT),
            "--file",
            str(ROOT / "compose.yaml"),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise StackError(f"`docker compose config` failed: {proc.stderr.strip()[-2000:]}")
    service = json.loads(proc.stdout)["services"]["client"]
    options = {sdk: service[key] for key, sdk in HARDENING_KEYS.items() if key in service}
    if "ulimits" in options:
        options["ulimits"] = [
            docker.types.Ulimit(name=name, soft=limit["soft"], hard=limit["hard"])
            for name, limit in options["ulimits"].items()
        ]
    return options


class OneOffClients(Stack):
    """Starting containers of the lab's images on the stack's network."""

    @property
    def hardening(self) -> dict[str, Any]:
        return lab_hardening()

    def start_container(self, image: str, command: list[str], **options: Any) -> ClientRun:
        """A one-off container on the stack's network, hardened like the services unless
        ``options`` say otherwise, labelled so that teardown removes it."""
        container = self.docker.containers.run(
            f"sockets-lab/{image}:{self.image_tag}",
            command,
            detach=True,
            network=self.network_name,
            labels=self.oneoff_labels(),
            **{**self.hardening, **options},
        )
        self._oneoffs.append(container)
        return ClientRun(container)

    def start_client(self, *args: str, json_output: bool = True) -> ClientRun:
        """Start a one-off client container on the stack's network."""
        container = self.start_container(
            "client", [*args, "--json"] if json_output else list(args)
        ).container
        return ClientRun(container, client_json=json_output)

    def start_python(self, source: str, *args: str) -> ClientRun:
        """Run a stdlib Python script (e.g. a test peer) in a one-off container on the network."""
        return self.start_container("client", list(args), entrypoint=["python3", "-c", source])

    def exec_python(self, source: str, *args: str, timeout_s: float = 150) -> BackgroundExec:
        """Run a stdlib Python script (a test peer) in the client host, in the background
        (``BackgroundExec``, stopped with SIGKILL after ``timeout_s``): for a peer that needs no
        address of its own, an exec instead of a container (``start_python``)."""
        return BackgroundExec(self.client_host(), ["python3", "-c", source, *args], timeout_s)

    @contextlib.contextmanager
    def capture(
        self, service: str = "server", bpf: str = "tcp or udp", interface: str = "eth0"
    ) -> Iterator[LiveCapture]:
        """tcpdump in the service's network namespace while the block runs (``capture_in``);
        ``interface`` eth0 is the stack's network: the health check's loopback probes stay
        out."""
        with capture_in(
            self.docker,
            self.container(service),
            self.image_tag,
            self.oneoff_labels(),
            bpf,
            interface,
        ) as result:
            yield result

    def client_host(self) -> Container:
        """A client container that stays up beside the stack (its own host on the network,
        hardened like the client service), in which ``run_client`` runs each client."""
        if self._client_host is None:
            self._client_host = self.start_container(
                "client",
                ["infinity"],
                entrypoint=["sleep"],
                init=True,  # init: reaps orphans
            ).container
        return self._client_host

    def run_client(
        self, *args: str, timeout_s: float = 120, json_output: bool = True
    ) -> ClientResult:
        """Run a client subcommand to completion in the client host (``exec_bounded``) and
        return its result. ``start_client`` gives a client a container, and an address, of its
        own, for a test that runs it in the background or cuts it off."""
        command = ["python3", "-m", "labclient", *args, *(["--json"] if json_output else [])]
        code, stdout, stderr = exec_bounded(self.client_host(), command, timeout_s)
        if code == KILLED:
            raise StackError(
                f"client {' '.join(args)} did not finish within {timeout_s:g}s (killed); "
                f"output so far: {(stdout + stderr)[-2000:]}"
            )
        return client_result(code, stdout, stderr, json_output)

    def demo_on_the_wire(self) -> tuple[ClientResult, bytes]:
        """The demo under tcpdump in the server's namespace: its result and the pcap, taken once
        the capture holds every exchange the client reported, whole (``LiveCapture``)."""
        with self.capture() as captured:
            result = self.run_client("demo")
            if result.exit_code == 0:
                captured.wait_until(
                    "every exchange of the demo, whole",
                    lambda pcap: lacking_exchanges(conversations(read(pcap)), result.exchanges),
                )
        return result, captured["pcap"]
