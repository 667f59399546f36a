"""Several Docker hosts on one machine, one swarm: the multi-host test bed of ``make cluster``
and the cluster tests.

Each node is a container running its own ``dockerd`` (Debian's docker.io, services/node), on an
underlay network of its own. The lab's images are side-loaded into every node (``docker save``
once, ``docker load`` on each: no registry), the manager initialises a swarm, the workers join,
and ``deploy/stack.yaml`` is deployed with ``docker stack deploy --resolve-image never``.

    with Cluster() as cluster:                       # nodes up, images loaded, swarm formed
        cluster.deploy(server_on="worker1")
        result = cluster.run_client("worker2", "echo", "--size", "1MiB")
    # the stack, the nodes, their volumes and the underlay are removed, even on Ctrl-C

The host's engine keeps no trace: the swarm lives inside the nodes. Each node's API socket is
bind-mounted to a host folder of the run's, so the Docker SDK talks to every node directly.
"""

from __future__ import annotations

import contextlib
import functools
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import docker
import docker.errors
import requests
from docker.models.containers import Container
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from .clients import ClientResult, ClientRun, lab_hardening
from .lifecycle import Lifecycle, tcpdump_command, tcpdump_dropped
from .stack import ROOT, NotYet, StackError, require_images, wait_for

CLUSTER_LABEL = "org.sockets-lab.cluster"
STACK = "lab"
OVERLAY = f"{STACK}_labnet"
NODES = ("manager", "worker1", "worker2")
IMAGES = ("server", "client")
DAEMON_UP_WITHIN_S = 60
API_TIMEOUT_S = 120
# A node's dockerd chooses its own storage driver, as it does on any host: overlay2 where the
# filesystem under its /var/lib/docker (a volume, on the engine's host) allows it, vfs where not
# (a volume on overlayfs: overlay cannot stack on itself). vfs copies every layer; on a 2-core
# machine the cluster's tests took 253 s and 202 CPU-s with vfs forced, 171 s and 112 with
# overlay2 (2026-12-05). A node holds only the images it runs, for vfs's sake.
DOCKERD_ARGS = ["--log-level=warn"]
# Swarm's heartbeat: a node that stops answering is declared down after a few periods (5 s by
# default). One second makes node loss show within seconds, which is what the test bed is for.
HEARTBEAT_NS = 1_000_000_000
# Where tcpdump writes inside a node (the node's own tmpfs).
NODE_CAPTURE, NODE_CAPTURE_LOG = "/tmp/capture.pcap", "/tmp/capture.log"  # noqa: S108

# Where the machine's cgroups are (v1: one hierarchy per controller below it; v2: one).
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_parent(node: str) -> str:
    return f"sockets-lab-cluster-{node}"


def cgroup_parents(nodes: list[str], root: Path = CGROUP_ROOT) -> list[Path]:
    """The cgroup parents of these nodes that exist, in every hierarchy: the engine makes them
    when a node starts and never removes them."""
    v1 = not (root / "cgroup.controllers").exists()
    found: dict[Path, Path] = {}  # one path per directory: cpu and cpuacct may be one hierarchy
    for node in nodes:
        name = cgroup_parent(node)
        for path in sorted(root.glob(f"*/{name}")) if v1 else [root / name]:
            if path.is_dir():
                found.setdefault(path.resolve(), path)
    return list(found.values())


def remove_cgroup_parents(nodes: list[str], root: Path = CGROUP_ROOT) -> list[str]:
    """Remove the nodes' cgroup parents once their containers are gone; one still in use (a
    cgroup below it, another cluster with a node of that name) or not ours to remove (a
    rootless engine) stays. Returns those that stayed."""
    left = []
    for path in cgroup_parents(nodes, root):
        try:
            path.rmdir()
        except FileNotFoundError:
            pass  # removed meanwhile (another cluster stopping)
        except OSError as exc:
            left.append(f"{path} ({exc.strerror})")
    return left


# How a node may run, most privileged first: `--privileged` where the engine allows it; where it
# does not (an engine without CAP_SYS_RESOURCE cannot grant it: "unable to apply caps"), every
# capability but that one, with the confinement a dockerd needs lifted one by one.
UNCONFINED = ["seccomp=unconfined", "apparmor=unconfined"]
PRIVILEGE_MODES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("privileged", {"privileged": True, "security_opt": UNCONFINED}),
    (
        "all capabilities but SYS_RESOURCE",
        {
            "cap_add": ["ALL"],
            "cap_drop": ["SYS_RESOURCE"],
            "security_opt": UNCONFINED,
            # --security-opt systempaths=unconfined: /proc/sys writable (ip_forward, bridges).
            "MaskedPaths": [],
            "ReadonlyPaths": [],
        },
    ),
)


def _runs_spec(task: dict[str, Any], template: dict[str, Any]) -> bool:
    """Whether ``task`` was made from this task template: its container (image, environment,
    command) and its placement."""
    return all(task["Spec"].get(key) == template.get(key) for key in ("ContainerSpec", "Placement"))


def save_image(engine: docker.DockerClient, name: str, out: BinaryIO) -> None:
    """Write ``docker save`` of the image ``name`` to ``out``, under that name. (The SDK's
    ``save(named=True)`` names the archive after the image's *first* tag: while another test
    had tagged the client image ``:cpu-share-...``, the nodes loaded it under that tag only, and
    eight cluster tests found no ``:latest``.)"""
    for chunk in engine.images.get(name).save(named=name):
        out.write(chunk)


# What a node's engine says when the swarm's manager did not attach a container to an overlay
# network within the engine's own limit (20 s). Seen in CI with two cores fully taken: one
# container's start, once in a run, while the next one attached at once.
ATTACH_TIMED_OUT = "attaching to network failed"
ATTACH_ATTEMPTS = 3


def _attach_timed_out(exc: BaseException) -> bool:
    return (
        isinstance(exc, docker.errors.APIError)
        and ATTACH_TIMED_OUT in str(exc.explanation or "")
        and "context deadline exceeded" in str(exc.explanation or "")
    )


def run_attached(
    engine: docker.DockerClient, image: str, attempts: int = ATTACH_ATTEMPTS, **options: Any
) -> Container:
    """``engine.containers.run(image, detach=True, **options)`` for a container on an overlay
    network: if its start fails because the manager did not attach it in time, the container
    is removed and made again, ``attempts`` times in all; any other error at once. The last
    failure is raised as it came (a test that turns "cannot join" into an xfail still can)."""

    def attempt() -> Container:
        container = engine.containers.create(image, **options)
        try:
            container.start()
        except BaseException:
            with contextlib.suppress(docker.errors.APIError, requests.RequestException):
                container.remove(force=True)
            raise
        return container

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_fixed(1),
        retry=retry_if_exception(_attach_timed_out),
        reraise=True,
    )
    return retrying(attempt)


class ClusterError(StackError):
    """The cluster could not be formed, or did something the harness did not expect."""


@dataclass
class Node:
    """One Docker host of the cluster: its container on the machine's engine and its own API."""

    name: str
    container: Container
    socket_dir: Path

    @functools.cached_property
    def api(self) -> docker.DockerClient:
        return docker.DockerClient(
            base_url=f"unix://{self.socket_dir / 'docker.sock'}", timeout=API_TIMEOUT_S
        )

    @property
    def address(self) -> str:
        """The node's address on the underlay (where VXLAN travels)."""
        self.container.reload()
        return next(iter(self.container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]

    @property
    def storage_driver(self) -> str:
        """The storage driver the node's dockerd chose (overlay2 or vfs: see DOCKERD_ARGS)."""
        return str(self.api.info()["Driver"])

    def exec(self, *command: str, check: bool = True) -> str:
        return self.exec_bytes(*command, check=check).decode(errors="replace")

    def exec_bytes(self, *command: str, check: bool = True) -> bytes:
        code, output = self.container.exec_run(list(command))
        if check and code != 0:
            raise ClusterError(
                f"`{' '.join(command)}` on {self.name} exited {code}: "
                f"{output.decode(errors='replace')}"
            )
        return output

    @contextlib.contextmanager
    def capture(self, bpf: str, interface: str = "eth0") -> Iterator[dict[str, bytes]]:
        """tcpdump on the node's own interface (the underlay) while the block runs; the pcap
        is in the yielded dict's "pcap" afterwards."""
        command = shlex.join(tcpdump_command(interface, bpf, NODE_CAPTURE))
        self.container.exec_run(
            ["sh", "-c", f"exec {command} >{NODE_CAPTURE_LOG} 2>&1"], detach=True
        )

        def listening() -> None:
            if "listening on" not in self.exec("cat", NODE_CAPTURE_LOG, check=False):
                raise NotYet("tcpdump is not listening yet")

        wait_for(f"tcpdump on {self.name}", listening, 10)
        result: dict[str, bytes] = {}
        try:
            yield result
        finally:
            self.exec("pkill", "-INT", "-x", "tcpdump", check=False)

            def stopped() -> None:
                if self.exec("pgrep", "-x", "tcpdump", check=False).strip():
                    raise NotYet("tcpdump is still writing")

            wait_for(f"tcpdump on {self.name} to stop", stopped, 10)
            result["pcap"] = self.exec_bytes("cat", NODE_CAPTURE)
        if lost := tcpdump_dropped(self.exec("cat", NODE_CAPTURE_LOG, check=False)):
            raise ClusterError(f"{self.name}: {lost}")


class Cluster(Lifecycle):
    """Docker hosts in containers forming one swarm, torn down on exit whatever happened."""

    def __init__(
        self,
        nodes: tuple[str, ...] = NODES,
        images: tuple[str, ...] = IMAGES,
        image_tag: str = "latest",
        run: str | None = None,
        say: Any = None,
        swarm: bool = True,
    ) -> None:
        self.names = nodes
        self.images = images
        self.image_tag = image_tag
        self.run = self.project = run or f"labcluster-{uuid.uuid4().hex[:8]}"
        self.docker = docker.from_env(timeout=API_TIMEOUT_S)
        self.nodes: dict[str, Node] = {}
        self.swarm = swarm  # False: Docker hosts only, each its own engine (no swarm formed)
        self.mode = ""
        self.say = say or (lambda text: None)
        self._socket_root: Path | None = None
        self.label = f"{CLUSTER_LABEL}={self.run}"

    # -- lifecycle (enter, exit and the sweep: labstack.lifecycle) ---------------------------
    @property
    def labels(self) -> dict[str, str]:
        return {CLUSTER_LABEL: self.run}

    @property
    def node_image(self) -> str:
        return f"sockets-lab/node:{self.image_tag}"

    def start(self) -> None:
        started = time.monotonic()
        require_images(self.docker, self.images, self.image_tag)
        self.ensure_node_image()
        options = self.node_options()
        self._socket_root = Path(tempfile.mkdtemp(prefix=f"{self.run}-"))
        network = self.docker.networks.create(
            f"{self.run}-underlay", driver="bridge", labels=self.labels
        )
        for name in self.names:
            self.nodes[name] = self._start_node(name, network.name, options)
        for node in self.nodes.values():
            wait_for(
                f"{node.name}'s dockerd",
                lambda n=node: self._daemon_up(n),
                DAEMON_UP_WITHIN_S,
                every_s=0.3,
            )
        drivers = sorted({node.storage_driver for node in self.nodes.values()})
        self.say(
            f"cluster: {len(self.nodes)} Docker hosts up as containers ({self.mode}), "
            f"storing images with {', '.join(drivers)}, in {time.monotonic() - started:.1f}s"
        )
        self._load_images()
        if self.swarm:
            self._form_swarm()
            self.say(
                f"cluster: swarm formed: {self.describe_nodes()} "
                f"({time.monotonic() - started:.1f}s in all)"
            )

    def stop(self) -> None:
        """Remove the nodes (their swarm and containers die with them), their volumes, the
        underlay and the socket folders. Safe to call twice and after a failed start."""

        def stop(node: Node) -> None:
            began = time.monotonic()
            # The node's own containers first, so that their cgroups (in the machine's
            # hierarchy) go with them; then the node itself, whose swarm state needs no care.
            with contextlib.suppress(Exception):
                for container in node.api.containers.list():
                    container.stop(timeout=2)
            with contextlib.suppress(docker.errors.APIError):
                node.container.kill()
            self.say(f"cluster: {node.name} stopped in {time.monotonic() - began:.1f}s")

        self.on_every_node(stop)
        names = list(self.nodes)
        self.nodes.clear()
        self.sweep()
        left = remove_cgroup_parents(names)
        if left:
            self.say(f"cluster: cgroup parents still in use, left as they are: {', '.join(left)}")
        if self._socket_root is not None:
            shutil.rmtree(self._socket_root, ignore_errors=True)

    # -- the nodes ---------------------------------------------------------------------------
    def ensure_node_image(self) -> None:
        """Build the node image (FROM the lab's base, recorded in .env by `make build`)."""
        try:
            self.docker.images.get(self.node_image)
            return
        except docker.errors.ImageNotFound:
            pass
        base = "python:3.11-slim-bookworm"
        env_file = ROOT / ".env"
        if env_file.exists():
            for line in env_file.read_text().splitlines():
                if line.startswith("BASE_IMAGE="):
                    base = line.split("=", 1)[1].strip()
        self.say(f"cluster: building {self.node_image} FROM {base} (Debian's docker.io)")
        try:
            self.docker.images.build(
                path=str(ROOT / "services"),
                dockerfile="node/Dockerfile",
                tag=self.node_image,
                buildargs={"BASE_IMAGE": base},
                rm=True,
                pull=False,
            )
        except docker.errors.BuildError as exc:
            log = "".join(str(part.get("stream", "")) for part in exc.build_log)
            raise ClusterError(f"building {self.node_image} failed: {exc}\n{log[-3000:]}") from None

    def node_options(self) -> dict[str, Any]:
        """The most privileged way this engine lets a node run (see PRIVILEGE_MODES)."""
        refused = []
        for mode, options in PRIVILEGE_MODES:
            probe = self._create(options, entrypoint=["true"], name=None, labels=self.labels)
            try:
                self.docker.api.start(probe)
                if self.docker.api.wait(probe, timeout=30)["StatusCode"] == 0:
                    self.mode = mode
                    return options
                refused.append(f"{mode}: exited non-zero")
            except docker.errors.APIError as exc:
                refused.append(f"{mode}: {exc.explanation or exc}")
            finally:
                self.docker.api.remove_container(probe, force=True, v=True)
        raise ClusterError(
            "this engine cannot run a Docker host in a container: " + "; ".join(refused)
        )

    def _create(self, options: dict[str, Any], **create: Any) -> str:
        """A container of the node image via the low-level API (the SDK has no systempaths)."""
        options = dict(options)
        masked = {
            key: options.pop(key) for key in ("MaskedPaths", "ReadonlyPaths") if key in options
        }
        binds = create.pop("binds", {})
        host_config = self.docker.api.create_host_config(
            binds={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}, **binds},
            tmpfs={"/run": "", "/tmp": ""},  # noqa: S108 (the node's own tmpfs)
            **options,
            **create.pop("host", {}),
        )
        host_config.update(masked)
        return self.docker.api.create_container(self.node_image, host_config=host_config, **create)[
            "Id"
        ]

    def _start_node(self, name: str, network: str, options: dict[str, Any]) -> Node:
        assert self._socket_root is not None, "start() makes it first"
        socket_dir = self._socket_root / name
        socket_dir.mkdir()
        volume = self.docker.volumes.create(f"{self.run}-{name}", labels=self.labels)
        container_id = self._create(
            options,
            name=f"{self.run}-{name}",
            hostname=name,
            labels=self.labels,
            command=DOCKERD_ARGS,
            binds={
                volume.name: {"bind": "/var/lib/docker", "mode": "rw"},
                str(socket_dir): {"bind": "/run/lab", "mode": "rw"},
            },
            # A cgroup parent of its own per node: each dockerd manages its containers' cgroups
            # in the machine's hierarchy (mounted read-write) without meeting the others'.
            host={"cgroup_parent": cgroup_parent(name), "network_mode": network},
        )
        self.docker.api.start(container_id)
        return Node(name, self.docker.containers.get(container_id), socket_dir)

    def on_every_node(self, action: Any) -> list[str]:
        """Run ``action(node)`` on every node at once; the errors, as "node: error" lines."""
        with ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as pool:
            futures = {node.name: pool.submit(action, node) for node in self.nodes.values()}
        return [
            f"{name}: {future.exception()}"
            for name, future in futures.items()
            if future.exception() is not None
        ]

    @staticmethod
    def _daemon_up(node: Node) -> None:
        node.container.reload()
        if node.container.status != "running":
            raise ClusterError(
                f"node {node.name} stopped: {node.container.logs(tail=30).decode(errors='replace')}"
            )
        try:
            node.api.ping()
        except Exception as exc:
            raise NotYet(f"{node.name}'s dockerd does not answer yet ({exc})") from None

    def _load_images(self) -> None:
        """``docker save`` the lab's images once, ``docker load`` them on every node at once."""
        started = time.monotonic()
        names = [f"sockets-lab/{image}:{self.image_tag}" for image in self.images]
        assert self._socket_root is not None, "start() makes it first"
        archives = []
        for name in names:
            archives.append(self._socket_root / f"{name.split('/')[-1]}.tar")
            with archives[-1].open("wb") as out:
                save_image(self.docker, name, out)

        def load(node: Node) -> None:
            for name, archive in zip(names, archives, strict=True):
                if self.swarm and node is self.manager and "/server:" in name:
                    continue  # deploy() keeps tasks off the manager: it runs one-off clients
                with archive.open("rb") as data:  # layers a node already holds are skipped
                    node.api.images.load(data)

        errors = self.on_every_node(load)
        for archive in archives:
            archive.unlink()
        if errors:
            raise ClusterError(f"loading the images failed: {'; '.join(errors)}")
        self.say(
            f"cluster: loaded {', '.join(names)} into {len(self.nodes)} nodes "
            f"(saved once, loaded on each: no registry) in "
            f"{time.monotonic() - started:.1f}s"
        )

    def _form_swarm(self) -> None:
        manager, *workers = self.nodes.values()
        manager.api.swarm.init(
            advertise_addr=manager.address,
            listen_addr="0.0.0.0:2377",
            dispatcher_heartbeat_period=HEARTBEAT_NS,
        )
        token = manager.api.swarm.attrs["JoinTokens"]["Worker"]
        for worker in workers:
            worker.api.swarm.join(
                remote_addrs=[f"{manager.address}:2377"],
                join_token=token,
                advertise_addr=worker.address,
                listen_addr="0.0.0.0:2377",
            )

        def all_ready() -> None:
            states = self.node_states()
            if sorted(states) != sorted(self.nodes) or set(states.values()) != {"ready"}:
                raise NotYet(f"nodes: {states}")

        wait_for("every node to be ready in the swarm", all_ready, 60, every_s=0.3)

    @property
    def manager(self) -> Node:
        return self.nodes[self.names[0]]

    def describe_nodes(self) -> str:
        return ", ".join(
            f"{n.name} ({'manager' if n is self.manager else 'worker'}, {n.address})"
            for n in self.nodes.values()
        )

    def node_states(self) -> dict[str, str]:
        """Each node's state as the manager sees it (ready, down, ...)."""
        return {
            n.attrs["Description"]["Hostname"]: n.attrs["Status"]["State"]
            for n in self.manager.api.nodes.list()
        }

    # -- the stack ---------------------------------------------------------------------------
    def docker_cli(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout_s: float = 120,
    ) -> str:
        """The docker CLI against the manager (``docker stack`` has no SDK equivalent)."""
        sock = self.manager.socket_dir / "docker.sock"
        proc = subprocess.run(
            ["docker", "--host", f"unix://{sock}", *args],
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ClusterError(
                f"`docker {' '.join(args)}` exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
            )
        return proc.stdout + proc.stderr

    def deploy(
        self,
        server_on: str | None = None,
        client_on: str | None = None,
        replicas: int = 1,
        client: bool = False,
        **env: str,
    ) -> None:
        """``docker stack deploy`` of deploy/stack.yaml, the server placed on ``server_on``
        (a node name, or None for any worker); without ``client`` the demo client is scaled
        to 0."""
        settings = {
            "LAB_IMAGE_TAG": self.image_tag,
            "LAB_SERVER_REPLICAS": str(replicas),
            "LAB_CLIENT_REPLICAS": "1" if client else "0",
            **env,
        }
        # Tasks go to the workers unless placed: the manager keeps the control plane (a node
        # loss must not take the swarm's only manager) and runs the one-off clients.
        settings.setdefault("LAB_SERVER_CONSTRAINT", "node.role==worker")
        settings.setdefault("LAB_CLIENT_CONSTRAINT", "node.role==worker")
        if server_on:
            settings["LAB_SERVER_CONSTRAINT"] = f"node.hostname=={server_on}"
        if client_on:
            settings["LAB_CLIENT_CONSTRAINT"] = f"node.hostname=={client_on}"
        self.docker_cli(
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "--compose-file",
            str(ROOT / "deploy" / "stack.yaml"),
            STACK,
            env=settings,
        )

    def service(self, name: str = "server") -> Any:
        return self.manager.api.services.get(f"{STACK}_{name}")

    def _hostnames(self) -> dict[str, str]:
        """Node id -> hostname, as the manager knows them."""
        return {n.id: n.attrs["Description"]["Hostname"] for n in self.manager.api.nodes.list()}

    @staticmethod
    def _overlay_addresses(task: dict[str, Any]) -> list[str]:
        return [
            a.split("/")[0]
            for net in task.get("NetworksAttachments", [])
            if net["Network"]["Spec"]["Name"] == OVERLAY
            for a in net["Addresses"]
        ]

    def tasks(self, name: str = "server", state: str = "running") -> list[dict[str, str]]:
        """The service's tasks in ``state`` that run its current spec: node, container, overlay
        address, task id. A task of the spec before a `docker stack deploy` still runs, with
        desired state running, until the update reaches it: counting it would let a test start
        on a task that is about to be replaced."""
        hostnames = self._hostnames()
        service = self.service(name)
        current = service.attrs["Spec"]["TaskTemplate"]
        found = []
        for task in service.tasks(filters={"desired-state": "running"}):
            status = task["Status"]
            if status["State"] != state or not _runs_spec(task, current):
                continue
            addresses = self._overlay_addresses(task)
            found.append(
                {
                    "id": task["ID"],
                    "node": hostnames.get(task["NodeID"], "?"),
                    "container": status.get("ContainerStatus", {}).get("ContainerID", ""),
                    "addresses": addresses,
                    "ip": addresses[0] if addresses else "",
                    "image": task["Spec"]["ContainerSpec"]["Image"],
                }
            )
        return found

    def task_history(self, name: str = "server") -> list[str]:
        """Every task the service has had, oldest first: node, state, overlay address, error
        (what `docker service ps --no-trunc` shows), for reports and failure messages."""
        hostnames = self._hostnames()
        lines = []
        for task in sorted(self.service(name).tasks(), key=lambda t: t["CreatedAt"]):
            addresses = self._overlay_addresses(task)
            status = task["Status"]
            lines.append(
                f"{task['ID'][:10]} on {hostnames.get(task.get('NodeID'), '?')}: "
                f"{status['State']} (desired {task['DesiredState']}) "
                f"{','.join(addresses) or '-'} {status.get('Err', '')}".rstrip()
            )
        return lines

    def wait_tasks(
        self, count: int, name: str = "server", within_s: float = 60, healthy: bool = True
    ) -> list[dict[str, str]]:
        """Wait for ``count`` running tasks of the service (healthy ones, if it has a check)."""

        def running() -> list[dict[str, str]]:
            tasks = self.tasks(name)
            ready = [t for t in tasks if not healthy or self.task_healthy(t)]
            if len(ready) != count:
                raise NotYet(
                    f"{len(ready)} of {count} {name} tasks running and healthy "
                    f"({[(t['node'], t['ip']) for t in tasks]})"
                )
            return ready

        return wait_for(f"{count} {name} task(s)", running, within_s, every_s=0.3)

    def task_container(self, task: dict[str, str]) -> Container:
        return self.nodes[task["node"]].api.containers.get(task["container"])

    def task_healthy(self, task: dict[str, str]) -> bool:
        try:
            container = self.task_container(task)
        except (docker.errors.DockerException, requests.RequestException, KeyError):
            return False  # gone, or its node is (a lost node's task is listed a while longer)
        health = container.attrs["State"].get("Health")
        return health is None or health["Status"] == "healthy"

    # -- clients -----------------------------------------------------------------------------
    def start_client(self, node: str, *args: str, json_output: bool = True) -> ClientRun:
        """A one-off client container on ``node``, attached to the stack's overlay network."""
        container = run_attached(
            self.nodes[node].api,
            f"sockets-lab/client:{self.image_tag}",
            command=[*args, "--json"] if json_output else list(args),
            network=OVERLAY,
            labels=self.labels,
            environment={"LAB_HOST": "server"},
            **lab_hardening(),
        )
        return ClientRun(container, client_json=json_output)

    def run_client(self, node: str, *args: str, timeout_s: float = 120) -> ClientResult:
        run = self.start_client(node, *args)
        try:
            return run.wait(timeout_s)
        finally:
            with contextlib.suppress(docker.errors.APIError):
                run.container.remove(force=True)

    def logs(self, tail: int = 60) -> str:
        """The stack's containers' recent output on every node, for a failed test's report."""
        parts = []
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                for container in node.api.containers.list(all=True):
                    text = container.logs(tail=tail).decode(errors="replace")
                    parts.append(
                        f"----- {node.name}: {container.name} ({container.status}) -----\n{text}"
                    )
        return "\n".join(parts) or "(no containers)"
