"""Faults a test injects into a stack: stop, kill or crash a service, cut it off the network,
delay and drop its packets (the helper script ``labfault`` in the tools image)."""

from __future__ import annotations

from docker.models.containers import Container

from .stack import Stack


class Faults(Stack):
    def stop_service(self, service: str, timeout_s: int = 10) -> None:
        self.container(service).stop(timeout=timeout_s)

    def start_service(self, service: str) -> None:
        self.container(service).start()
        self.wait_healthy(service)

    def kill_service(self, service: str, sig: str = "SIGKILL") -> None:
        self.container(service).kill(signal=sig)

    def disconnect(self, container: Container) -> None:
        """Cut a container off the stack's network (a partition)."""
        self.docker.networks.get(self.network_name).disconnect(container)

    def silence(self, container: Container) -> str:
        """Drop every packet ``container`` sends: to its peers it vanishes without a word. Unlike
        a disconnect, its address stays taken: the engine gives a freed address to the next
        container on the network, whose kernel would answer the peers' retransmissions to it
        with a reset. Returns the method (see ``shape``)."""
        return self.net_admin(container, ["labfault", "0", "100"], "silencing a container")

    def reconnect(self, container: Container, alias: str | None = None) -> None:
        """Put it back, with its service name as a DNS alias again."""
        self.docker.networks.get(self.network_name).connect(
            container, aliases=[alias] if alias else None
        )

    def shape(self, service: str, delay_ms: int = 0, loss_pct: int = 0) -> str:
        """Delay and drop the service's outgoing packets (both 0: undo). Returns the method
        (``netem``, ``tbf+nft`` or ``none``; see ``services/tools/labfault``).

        A tools container joins the service's network namespace with only NET_ADMIN (as root,
        so the capability is effective); the service itself keeps ``cap_drop: [ALL]``.
        """
        output = self.net_admin(
            self.container(service),
            ["labfault", str(delay_ms), str(loss_pct)],
            f"shaping {service}",
        )
        return output.splitlines()[-1]

    def net_admin(self, container: Container, command: list[str], what: str) -> str:
        """Run ``command`` (a tools-image helper) in ``container``'s network namespace with only
        NET_ADMIN, as root so that the capability is effective; its output."""
        return self.run_helper(
            "tools",
            command,
            what,
            network_mode=f"container:{container.id}",
            user="0",
            cap_drop=["ALL"],
            cap_add=["NET_ADMIN"],
            read_only=True,
            security_opt=["no-new-privileges:true"],
        )

    def crash(self, service: str) -> None:
        """SIGKILL the service's process from outside, as a crash ends it. (`docker kill`
        counts as a deliberate stop, which a restart policy leaves alone.) A helper in the
        host's PID namespace with only CAP_KILL sends the signal."""
        pid = self.process_identity(service)[0]
        self.run_helper(
            "tools",
            ["sh", "-c", f"kill -KILL {pid}"],
            f"killing {service}'s process {pid}",
            pid_mode="host",
            user="0",
            cap_drop=["ALL"],
            cap_add=["KILL"],
            read_only=True,
            security_opt=["no-new-privileges:true"],
            network_mode="none",
        )
