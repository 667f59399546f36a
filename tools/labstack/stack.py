"""A compose project as a context manager: the lab's stacks, for the tests, the benchmark and the
cluster work alike (nothing here imports from ``tests/``).

    with ComposeStack() as stack:               # unique project name; up; wait healthy (SDK)
        result = stack.run_client("echo", "--size", "1MiB")
        assert result.peer_ip == stack.ip_of("server", 4)
    # down -v, one-off containers removed, then a sweep by the project label -- also when `up`
    # itself failed, a test raised, or Ctrl-C arrived.

The compose CLI brings the stack up and down (it owns the compose file); everything else --
health, finding containers by their compose labels, logs -- goes through the Docker SDK. Waiting
is tenacity with a stop and ``reraise=True``, never sleep-and-hope.

``Stack`` here is the lifecycle, the lookups and the waiting; one-off containers are
``clients.OneOffClients`` and fault injection ``faults.Faults``; ``ComposeStack`` (in the
package) is the three together.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import subprocess
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from .lifecycle import Lifecycle

ROOT = Path(__file__).resolve().parents[2]
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "org.sockets-lab.oneoff"
NETWORK = "labnet"
HEALTHY_WITHIN_S = 60
# On every stack: Docker's health check every 5 s, not every second (the file says why).
HEALTH_OVERRIDE = Path(__file__).with_name("compose.health.yaml")
COMPOSE_TIMEOUT_S = 180


class StackError(RuntimeError):
    """The stack could not be brought up, or did something the harness did not expect."""


class NotYet(Exception):
    """A condition we are waiting for does not hold yet (tenacity retries on it)."""


def wait_for(what: str, check: Any, within_s: float, every_s: float = 0.1) -> Any:
    """Call ``check`` until it returns without raising ``NotYet``; give up after ``within_s``."""
    retrying = Retrying(
        stop=stop_after_delay(within_s),
        wait=wait_fixed(every_s),
        retry=retry_if_exception_type(NotYet),
        reraise=True,
    )
    try:
        return retrying(check)
    except NotYet as exc:
        raise StackError(f"gave up after {within_s:g}s waiting for {what}: {exc}") from None


def random_ula_subnet() -> str:
    """A random IPv6 ULA /64 (fd00::/8), so parallel runs never ask for the same subnet."""
    return str(
        ipaddress.IPv6Network((int.from_bytes(b"\xfd" + secrets.token_bytes(7), "big") << 64, 64))
    )


def on_top(compose_file: Path | None, overrides: tuple[Path, ...]) -> tuple[Path, ...]:
    """The compose files a stack puts on top of its own: the health check's interval
    (HEALTH_OVERRIDE) on the lab's compose.yaml, none on another (the benchmark's has no
    health checks, and no service named server), then the caller's ``overrides``."""
    return (HEALTH_OVERRIDE, *overrides) if compose_file is None else overrides


class Stack(Lifecycle):
    """A compose project with a unique name, brought up on enter and torn down on exit."""

    def __init__(
        self,
        project_dir: Path = ROOT,
        services: tuple[str, ...] = ("server",),
        env: dict[str, str] | None = None,
        project: str | None = None,
        compose_file: Path | None = None,
        overrides: tuple[Path, ...] = (),
    ) -> None:
        self.project_dir = project_dir
        self.compose_file = compose_file or project_dir / "compose.yaml"
        # more compose files on top: the health check's interval, then the caller's
        # (compose.publish.yaml, say)
        self.overrides = on_top(compose_file, overrides)
        self.project = project or f"labtest-{uuid.uuid4().hex[:10]}"
        self.services = services
        self.env = {**os.environ, "LAB_SUBNET6": random_ula_subnet(), **(env or {})}
        self.image_tag = self.env.get("LAB_IMAGE_TAG", "latest")
        self.docker = docker.from_env(timeout=COMPOSE_TIMEOUT_S)
        self.network_name = f"{self.project}_{NETWORK}"
        self.label = f"{PROJECT_LABEL}={self.project}"
        self._oneoffs: list[Container] = []
        self._client_host: Container | None = None  # clients.OneOffClients.client_host
        # What a test recorded of the server's process (process_identity) to show later that
        # the process never died or restarted meanwhile.
        self.first_process: tuple[int, str, int] | None = None

    # -- lifecycle (enter, exit and the sweep: labstack.lifecycle) ---------------------------
    def start(self) -> None:
        require_images(self.docker, ("server", "client", "tools"), self.image_tag)
        self.compose("up", "--detach", "--no-build", "--pull", "never", *self.services)
        for service in self.services:
            self.wait_healthy(service)

    def stop(self) -> None:
        """Remove everything this project made. Safe to call twice, and after a failed start."""
        self.remove_oneoffs()
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
        self.sweep()

    def compose(
        self, *args: str, check: bool = True, timeout_s: float = COMPOSE_TIMEOUT_S
    ) -> subprocess.CompletedProcess:
        cmd = [
            "docker",
            "compose",
            "--project-directory",
            str(self.project_dir),
            "--file",
            str(self.compose_file),
            *[arg for extra in self.overrides for arg in ("--file", str(extra))],
            "--project-name",
            self.project,
            *args,
        ]
        proc = subprocess.run(  # a session of its own: Ctrl-C is ours to handle, not compose's
            cmd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            start_new_session=True,
        )
        if check and proc.returncode != 0:
            raise StackError(
                f"`{' '.join(cmd[2:])}` exited {proc.returncode}: {proc.stderr.strip()[-3000:]}"
            )
        return proc

    # -- finding things ---------------------------------------------------------------------
    def containers(self, service: str) -> list[Container]:
        filters = {"label": [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={service}"]}
        return self.docker.containers.list(all=True, filters=filters, ignore_removed=True)

    def container(self, service: str) -> Container:
        found = self.containers(service)
        if len(found) != 1:
            raise StackError(f"expected one {service} container, found {len(found)}")
        return found[0]

    def ip_of(self, service: str, family: int = 4) -> str:
        """The service container's address on the stack's network, as the engine reports it."""
        return self.address_of(self.container(service), family)

    def address_of(self, container: Container, family: int = 4) -> str:
        container.reload()
        net = container.attrs["NetworkSettings"]["Networks"][self.network_name]
        ip = net["IPAddress"] if family == 4 else net["GlobalIPv6Address"]
        if not ip:
            raise StackError(f"{container.name} has no IPv{family} address on {self.network_name}")
        return ip

    def subnets(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        network = self.docker.networks.get(self.network_name)
        return [ipaddress.ip_network(c["Subnet"]) for c in network.attrs["IPAM"]["Config"]]

    def on_network(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return any(addr in net for net in self.subnets() if net.version == addr.version)

    def remove_oneoffs(self) -> None:
        """Remove the containers started beside the stack (``clients.OneOffClients``)."""
        for container in self._oneoffs:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        self._oneoffs.clear()
        self._client_host = None

    def oneoff_labels(self) -> dict[str, str]:
        """Labels for a container started beside the stack: the project label makes the sweep
        remove it. Compose stamps its labels (service=client among them) onto the images it
        builds, and containers inherit image labels: the service is overridden so that
        ``containers("client")`` finds only compose's own."""
        return {PROJECT_LABEL: self.project, SERVICE_LABEL: "oneoff", ONEOFF_LABEL: "true"}

    def run_helper(self, image: str, command: list[str], what: str, **options: Any) -> str:
        """Run a short-lived helper container to completion; its output, or StackError."""
        helper = self.docker.containers.run(
            f"sockets-lab/{image}:{self.image_tag}",
            command,
            detach=True,
            labels=self.oneoff_labels(),
            **options,
        )
        try:
            status = helper.wait(timeout=30)
            output = helper.logs().decode(errors="replace").strip()
        finally:
            helper.remove(force=True)
        if status["StatusCode"] != 0:
            raise StackError(f"{what} failed: {output}")
        return output

    def logs(self, tail: int = 200) -> str:
        """Every container's recent output, for a failed test's report."""
        parts = []
        label = {"label": f"{PROJECT_LABEL}={self.project}"}
        for container in self.docker.containers.list(all=True, filters=label, ignore_removed=True):
            text = container.logs(tail=tail, timestamps=False).decode(errors="replace")
            parts.append(f"----- {container.name} ({container.status}) -----\n{text}")
        return "\n".join(parts) or "(no containers)"

    # -- waiting ----------------------------------------------------------------------------
    def wait_healthy(self, service: str, within_s: float = HEALTHY_WITHIN_S) -> None:
        restarts_before: list[int] = []

        def healthy() -> None:
            container = self.container(service)
            container.reload()
            state, restarts = container.attrs["State"], container.attrs.get("RestartCount", 0)
            restarts_before[:] = restarts_before or [restarts]
            # With `restart: unless-stopped` a server that exits is restarted: its first exit
            # (restarting now, or one restart more) is what we report, not a wait that times
            # out.
            if state["Status"] in ("exited", "dead", "restarting") or (
                restarts > restarts_before[0]
            ):
                how = (
                    f"exited with {state['ExitCode']}"
                    if state["Status"] in ("exited", "dead")
                    else f"exited and was restarted ({restarts} times)"
                )
                raise StackError(
                    f"{service} {how} before it was healthy:\n"
                    f"{container.logs(tail=50).decode(errors='replace')}"
                )
            if _health_check_off(container) and state["Status"] == "running":
                return  # nothing to wait for: ready is the caller's to judge (the benchmark)
            health = state.get("Health", {}).get("Status")
            if health == "healthy":
                return
            if state["Status"] == "running":
                # Docker's own first check comes one interval (5 s) after the start: the same
                # check, run now, decides instead.
                try:
                    code, output = run_health_check(container)
                except docker.errors.APIError as exc:  # it stopped meanwhile: seen next time
                    raise NotYet(f"{service}: {exc}") from None
                if code == 0:
                    return
                raise NotYet(f"{service} is running; its health check says: {output[-300:]}")
            raise NotYet(f"{service} is {state['Status']}/{health}")

        wait_for(f"{service} to be healthy", healthy, within_s, every_s=0.25)

    def wait_for_log(
        self, container: Container, text: str, since: int = 0, within_s: float = 30
    ) -> str:
        """Wait for a line with ``text`` in the container's output after character ``since``;
        return that line."""

        def seen() -> str:
            output = container.logs().decode(errors="replace")[since:]
            for line in output.splitlines():
                if text in line:
                    return line
            raise NotYet(f"{text!r} not in {container.name}'s output yet")

        return wait_for(f"{text!r} in {container.name}'s output", seen, within_s)

    # -- the server's process ------------------------------------------------------------
    def process_identity(self, service: str = "server") -> tuple[int, str, int]:
        """(host pid, start time, restart count) of the service's process: if any of them
        changed, the process died (or was restarted) in between."""
        container = self.container(service)
        container.reload()
        state = container.attrs["State"]
        return state["Pid"], state["StartedAt"], container.attrs["RestartCount"]

    def healthcheck(self, service: str = "server") -> tuple[int, str]:
        """Run the service's health check now (exit status, output), as Docker would."""
        return run_health_check(self.container(service))

    def memory_bytes(self, service: str) -> int:
        """The resident memory of the service's own process (the container's PID 1). Not the
        container's cgroup usage: that also counts whatever else runs in it at that moment,
        such as a health check probe (a Python process of about 14 MiB)."""
        return self.process_figure(service, "rss") * 1024  # ps reports KiB, as VmRSS does

    def process_figure(self, service: str, field: str) -> int:
        """One ``ps`` figure (``rss``, ``nlwp``: threads, ...) of the service's own process,
        from the engine's `docker top`. Not an exec: a container at its pids limit (the
        threaded tutorial server's, by design) has no room for one more process."""
        container = self.container(service)
        container.reload()
        main = str(container.attrs["State"]["Pid"])
        top = container.top(ps_args=f"-eo pid,{field}")
        pid, value = top["Titles"].index("PID"), top["Titles"].index(field.upper())
        found = [row[value] for row in top["Processes"] if row[pid] == main]
        if len(found) != 1:
            raise StackError(f"no process {main} in {service}'s `docker top`: {top}")
        return int(found[0])

    def server_log(self, since: int = 0) -> str:
        """The server's output, from character ``since`` on (see ``log_mark``)."""
        return self.container("server").logs().decode(errors="replace")[since:]

    def log_mark(self) -> int:
        """Where the server's log ends now: waits from here ignore older lines (addresses of
        earlier, exited containers get reused)."""
        return len(self.server_log())

    # -- the server's log as events (LAB_LOG_FORMAT=json, as the suite runs every stack) ----
    def server_events(self, since: int = 0, **fields: object) -> list[dict[str, Any]]:
        """The server's JSON log lines after character ``since`` whose fields match ``fields``
        (see ``event_matches``); lines that are not JSON (a tutorial step's prints) are left
        out."""
        events = []
        for line in self.server_log(since).splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if event_matches(event, fields):
                        events.append(event)
        return events

    def wait_for_server_event(
        self, since: int, within_s: float = 30, **fields: object
    ) -> dict[str, Any]:
        """Wait for a log event after ``since`` whose fields match ``fields``; return it."""

        def seen() -> dict[str, Any]:
            if found := self.server_events(since, **fields):
                return found[0]
            raise NotYet(f"no event {fields} in the server's log yet")

        return wait_for(f"the server's event {fields}", seen, within_s)


def event_matches(event: dict[str, Any], fields: dict[str, object]) -> bool:
    """Each field equals the event's; ``peer_ip`` matches the address part of its ``peer``
    (``172.18.0.3:41072`` or ``[fd5a::3]:55946``); a callable is a predicate on the value."""
    for key, wanted in fields.items():
        if key == "peer_ip":
            peer = str(event.get("peer", ""))
            host = peer.rsplit(":", 1)[0].strip("[]") if peer else ""
            if host != wanted:
                return False
        elif callable(wanted):
            if key not in event or not wanted(event[key]):
                return False
        elif event.get(key) != wanted:
            return False
    return True


def require_images(engine: docker.DockerClient, images: tuple[str, ...], tag: str) -> None:
    """Each of the lab's ``images`` is built, or one clear error saying how to build it."""
    for image in images:
        try:
            engine.images.get(f"sockets-lab/{image}:{tag}")
        except docker.errors.ImageNotFound:
            raise StackError(
                f"image sockets-lab/{image}:{tag} is missing: run `make build` "
                "first (`make test` does)"
            ) from None


def run_health_check(container: Container) -> tuple[int, str]:
    """The container's health check, run now (exit status, output), as Docker would."""
    test = container.attrs["Config"]["Healthcheck"]["Test"]
    exit_code, output = container.exec_run(test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]])
    return exit_code, output.decode(errors="replace").strip()


def _health_check_off(container: Container) -> bool:
    """Has the container no health check (none in its image, or ``disable: true``)?"""
    test = (container.attrs["Config"].get("Healthcheck") or {}).get("Test") or ["NONE"]
    return test[0] == "NONE"
