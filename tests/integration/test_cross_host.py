"""Traffic really crosses from one container to another, over IPv4 and IPv6."""

from __future__ import annotations

import ipaddress
import json
import subprocess

import pytest
from labstack import ROOT, ComposeStack
from labstack.stack import HEALTH_OVERRIDE

FAMILIES = [pytest.param(4, id="ipv4"), pytest.param(6, id="ipv6")]


def assert_crossed_hosts(stack: ComposeStack, result, family: int) -> None:
    """The peer the client saw is the server container (per the engine), not us, not loopback."""
    assert result.exit_code == 0, result
    server_ip = stack.ip_of("server", family)
    assert ipaddress.ip_address(result.peer_ip) == ipaddress.ip_address(server_ip)
    assert result.family == f"IPv{family}"
    assert result.local_ip != result.peer_ip
    assert not ipaddress.ip_address(result.peer_ip).is_loopback
    assert not ipaddress.ip_address(result.local_ip).is_loopback
    assert stack.on_network(result.local_ip), f"{result.local_ip} is not on {stack.subnets()}"


@pytest.mark.parametrize("family", FAMILIES)
def test_tcp_echo_crosses_hosts(stack: ComposeStack, family: int) -> None:
    result = stack.run_client("echo", "--family", str(family), "--size", "64KiB")
    assert_crossed_hosts(stack, result, family)
    assert result.digest_ok


def test_tcp_echo_of_1mib_arrives_intact(stack: ComposeStack) -> None:
    result = stack.run_client("echo", "--size", "1MiB")
    assert result.exit_code == 0, result
    assert result.sent == result.received == 1 << 20
    assert result.sha256_received == result.sha256_sent


@pytest.mark.parametrize("family", FAMILIES)
def test_udp_echo_crosses_hosts(stack: ComposeStack, family: int) -> None:
    result = stack.run_client("udp", "--family", str(family), "--count", "5", "--size", "1024")
    assert_crossed_hosts(stack, result, family)
    assert result.echoed == result.datagrams == 5


@pytest.mark.parametrize("family", FAMILIES)
def test_greeting_names_the_clients_real_address(stack: ComposeStack, family: int) -> None:
    result = stack.run_client("greet", "--family", str(family))
    assert_crossed_hosts(stack, result, family)
    hostname = stack.container("server").attrs["Config"]["Hostname"]
    shown = f"[{result.local_ip}]" if family == 6 else result.local_ip
    assert f"Hello from {hostname} " in result.line
    assert f"You are {shown}:{result.local_port}." in result.line


def test_fifty_clients_at_once_each_get_their_own_payload(stack: ComposeStack) -> None:
    result = stack.run_client("echo", "--connections", "50", "--size", "16KiB")
    assert result.exit_code == 0, result
    assert result.completed == 50
    assert len({r["sha256_sent"] for r in result.results}) == 50  # 50 different payloads
    for each in result.results:
        assert each["sha256_received"] == each["sha256_sent"]
        assert each["received"] == 16 << 10
    assert len({(r["local_ip"], r["local_port"]) for r in result.results}) == 50


def test_demo_narrates_every_exchange_over_both_families(stack: ComposeStack) -> None:
    result = stack.run_client("demo")
    assert result.exit_code == 0, result
    assert result.crossed_hosts is True
    kinds = {(e["command"], e["family"]) for e in result.exchanges}
    assert kinds == {(c, f) for c in ("echo", "udp", "greet", "app") for f in ("IPv4", "IPv6")}
    assert len(result.exchanges) == 12  # echo, udp, greet and three app actions, per family
    server_ips = {stack.ip_of("server", 4), stack.ip_of("server", 6)}
    assert {e["peer_ip"] for e in result.exchanges} == server_ips


def test_compose_up_runs_three_demo_clients_side_by_side(stack: ComposeStack) -> None:
    """`docker compose up --scale client=3`: the compose service's default command is the demo."""
    stack.compose(
        "up", "--detach", "--no-build", "--pull", "never", "--scale", "client=3", "client"
    )
    clients = stack.containers("client")
    assert len(clients) == 3, [c.name for c in clients]
    codes = [c.wait(timeout=60)["StatusCode"] for c in clients]
    outputs = [c.logs().decode() for c in clients]
    assert codes == [0, 0, 0], outputs
    for output in outputs:
        assert "verdict: all 12 exchanges crossed from this container" in output
    for client in clients:
        client.remove()


def test_plain_compose_up_with_exit_code_from_client_ends_when_the_demo_does() -> None:
    """The README's plain-Compose form of `make up`: `docker compose up --exit-code-from client`
    ends by itself with the client's status, and the server, stopped with SIGTERM, exits 0.
    (Plain `docker compose up` keeps the server running after the demo, as a server should:
    the README says so.)"""
    with ComposeStack() as fresh:
        done = fresh.compose(
            "up", "--no-build", "--pull", "never", "--exit-code-from", "client", timeout_s=180
        )
        assert "verdict: all 12 exchanges crossed from this container" in done.stdout, done.stdout
        server = fresh.container("server")
        server.reload()
        assert server.status == "exited", server.status
        assert server.attrs["State"]["ExitCode"] == 0, fresh.server_log()[-2000:]


def test_the_demo_checks_health_every_second_and_labstacks_stacks_every_5_s(
    stack: ComposeStack,
) -> None:
    """`make up` starts the client once Docker's check finds the server healthy: every second
    in compose.yaml. Every stack labstack brings up has compose.health.yaml on top (every 5 s:
    each check costs about 80 ms of CPU) and waits with the same check, run itself."""
    demo = subprocess.run(
        ["docker", "compose", "--file", "compose.yaml", "config", "--format", "json"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(demo.stdout)["services"]["server"]["healthcheck"]["interval"] == "1s"
    assert stack.overrides[0] == HEALTH_OVERRIDE
    server = stack.container("server")
    assert server.attrs["Config"]["Healthcheck"]["Interval"] == 5 * 10**9
