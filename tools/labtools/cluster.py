"""`make cluster`: the demo across three Docker hosts of a swarm, narrated, then torn down.

Forms the test bed of tools/labstack/cluster.py (a manager and two workers, each a container
running its own dockerd, on an underlay network of their own; images side-loaded), deploys
deploy/stack.yaml with the server placed on one worker and the client's demo on the other,
prints the demo's transcript with the node and overlay address of each side, removes everything
and exits with the demo's status. The machine's own engine is left as it was (no swarm there).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from labstack.cluster import STACK, Cluster
from labstack.stack import NotYet, StackError, wait_for

from . import command
from .progress import Progress

# The plan that the progress line counts down (about PHASE_S each on a 2-core machine: 15 s in
# all on 2026-12-05, the nodes' engines on overlay2; 45 s when they were on vfs).
PHASES = (
    "forming the test bed: three dockerd hosts, a swarm, the images side-loaded",
    "deploying the stack",
    "waiting for the client's demo",
    "tearing down (nodes, their volumes, the underlay)",
)
PHASE_S = 5.0

SERVER_NODE, CLIENT_NODE = "worker1", "worker2"


def say(text: str = "") -> None:
    print(text, flush=True)


def demo_finished(cluster: Cluster) -> dict:
    tasks = cluster.service("client").tasks()
    done = [t for t in tasks if t["Status"]["State"] in ("complete", "failed", "rejected")]
    if not done:
        raise NotYet(f"client tasks: {[t['Status']['State'] for t in tasks]}")
    return done[0]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="make cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)  # no options: --help says what it does, and does nothing else
    say("== make cluster: the sockets lab on a Docker Swarm of three hosts ==")
    if not Path("/proc/net/ip_vs").exists():
        say(
            "cluster: this kernel has no IPVS (ip_vs): no VIP, no ingress routing mesh; the "
            "stack uses endpoint_mode dnsrr, so 'server' resolves to the tasks' own addresses"
        )
    bar = Progress("make cluster", len(PHASES), expected_step_s=PHASE_S)
    try:
        bar.step(PHASES[0])
        with Cluster(say=bar.say) as cluster:
            bar.step(PHASES[1])
            cluster.deploy(server_on=SERVER_NODE, client_on=CLIENT_NODE, client=True)
            (server,) = cluster.wait_tasks(1)
            say(
                f"cluster: server task on {server['node']}, overlay address {server['ip']} "
                f"(network {STACK}_labnet, VXLAN over the underlay)"
            )
            started = time.monotonic()
            bar.step(PHASES[2])
            task = wait_for("the client's demo", lambda: demo_finished(cluster), 120, 0.5)
            hostnames = {
                n.id: n.attrs["Description"]["Hostname"] for n in cluster.manager.api.nodes.list()
            }
            client_addresses = [
                a.split("/")[0]
                for net in task.get("NetworksAttachments", [])
                for a in net["Addresses"]
            ]
            say(
                f"cluster: client task on {hostnames.get(task['NodeID'], '?')}, overlay address "
                f"{', '.join(client_addresses)}; demo finished in "
                f"{time.monotonic() - started:.1f}s ({task['Status']['State']})"
            )
            say("---- the client's transcript (docker service logs lab_client) ----")
            # stdout and stderr (the DNS retries) come apart: put them back in time order.
            logs = cluster.docker_cli(
                "service", "logs", "--raw", "--timestamps", f"{STACK}_client"
            ).splitlines()
            say("\n".join(line.partition(" ")[2] for line in sorted(logs)))
            say("---- end of transcript ----")
            code = task["Status"].get("ContainerStatus", {}).get("ExitCode", 1)
            verdict = (
                "crossed from one Docker host to another over the overlay"
                if code == 0
                else f"FAILED (exit {code})"
            )
            say(f"cluster: client on {CLIENT_NODE} -> server on {SERVER_NODE}: {verdict}")
            bar.step(PHASES[3])
        bar.finish("done; nothing is left behind")
        return code
    except StackError as exc:
        say(f"make cluster: error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("make cluster: interrupted; everything was removed")
        return 130


if __name__ == "__main__":
    sys.exit(command.run(main))
