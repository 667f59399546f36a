"""The soak against the three-host Swarm test bed (``make soak TARGET=cluster``).

Two server replicas on the workers (``dnsrr``: "server" resolves to both tasks), the clients in
three containers on the manager, and a nemesis of its own on one track: a server task killed
(Swarm replaces it), a node lost (the worker's dockerd container paused: the manager declares it
down, its task is rescheduled; then resumed) and a rolling update (``service update --force``,
start-first). The cluster's own teardown removes everything, even on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker.errors
from labstack.clients import lab_hardening
from labstack.cluster import OVERLAY, Cluster, run_attached
from labstack.stack import NotYet, StackError, wait_for

from .follow import run_under_nemesis
from .nemesis import Nemesis

CLUSTER_FAULTS = ("task-kill", "node-loss", "rolling-update")
CLIENT_NODE = "manager"
REPLICAS = 2
READY_WAIT_S = 60.0  # for the replicas to be back before the next fault


@dataclass
class ClusterNemesis(Nemesis):
    cluster: Cluster | None = None
    replicas: int = REPLICAS

    @property
    def target(self) -> Cluster:
        assert self.cluster is not None
        return self.cluster

    def ready(self, within_s: float) -> None:
        """Every replica running and healthy again before the next fault: the cluster's track
        measures recovery from one fault at a time (two node losses in a row can leave no task
        running for a while, and a task kill then has nothing to kill)."""
        self.target.wait_tasks(self.replicas, within_s=max(1.0, min(within_s, READY_WAIT_S)))

    def apply(self, kind: str) -> Any:
        cluster = self.target

        def some_running() -> list[dict[str, str]]:
            if tasks := cluster.tasks():
                return tasks
            raise NotYet("no server task is running")

        tasks = wait_for("a running server task", some_running, 30, every_s=0.5)
        task = random.Random(f"{self.seed}/{len(self.faults)}").choice(tasks)
        if kind == "task-kill":
            cluster.task_container(task).kill()
            return task["node"]
        if kind == "node-loss":
            cluster.nodes[task["node"]].container.pause()
            return task["node"]
        if kind == "rolling-update":
            cluster.service().force_update()
            return None
        raise ValueError(kind)

    def undo(self, kind: str, state: Any) -> str | None:
        cluster = self.target
        if kind == "node-loss" and state:
            node = cluster.nodes[state].container
            node.reload()
            if node.attrs["State"].get("Paused"):
                node.unpause()
            return f"{state} back"
        if kind == "rolling-update":
            with contextlib.suppress(StackError):
                wait_for("the update", lambda: _update_done(cluster), 90, every_s=0.5)
            return "update done"
        return None

    def ensure_healthy(self) -> None:
        for node in self.target.nodes.values():
            with contextlib.suppress(docker.errors.APIError):
                node.container.reload()
                if node.container.attrs["State"].get("Paused"):
                    node.container.unpause()


def _update_done(cluster: Cluster) -> None:
    status = (cluster.service().attrs.get("UpdateStatus") or {}).get("State", "completed")
    if status not in ("completed", "rollback_completed"):
        raise NotYet(status)


def soak_cluster(
    seconds: float,
    seed: str,
    say: Callable[[str], None],
    workers: int = 3,
    cluster: Cluster | None = None,
) -> tuple[list[str], Nemesis]:
    """The soak on a cluster of its own (formed and torn down here), or on ``cluster``."""
    if cluster is not None:
        return _soak(cluster, seconds, seed, say, workers)
    with Cluster(say=say) as formed:
        return _soak(formed, seconds, seed, say, workers)


def _soak(
    cluster: Cluster, seconds: float, seed: str, say: Callable[[str], None], workers: int
) -> tuple[list[str], Nemesis]:
    lines: list[str] = []
    cluster.deploy(replicas=REPLICAS)
    cluster.wait_tasks(REPLICAS, within_s=120)
    nemesis = ClusterNemesis(seed, seconds, say=say, cluster=cluster, tracks=(CLUSTER_FAULTS,))
    api = cluster.nodes[CLIENT_NODE].api
    containers = [
        run_attached(
            api,
            f"sockets-lab/client:{cluster.image_tag}",
            command=["soak", "server", str(seconds), seed, f"w{i}"],
            entrypoint=["python3", "-m", "labprobe"],
            network=OVERLAY,
            labels=cluster.labels,
            **lab_hardening(),
        )
        for i in range(1, workers + 1)
    ]
    say(f"soak: {workers} client containers on {CLIENT_NODE}, {REPLICAS} server replicas")
    try:
        run_under_nemesis(nemesis, containers, lines, seconds + 60)
    finally:
        for container in containers:  # on a node's engine: no compose project sweeps them
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
    return lines, nemesis
