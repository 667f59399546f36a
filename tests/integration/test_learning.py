"""The learning path's small programs across containers (docs/learn.md runs each): the echo
client against the lab's server, the UDP pair from one container to another, recv() in pieces
and send() taking less when the peer does not read, both across the lab's network."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from lab import registry
from labstack import ROOT, ComposeStack
from labtutorial import echo_client, pieces, udp_client, udp_server

ECHO = str(registry.default_port("tcp-echo"))


def source(module: object) -> str:
    return Path(module.__file__).read_text()  # type: ignore[attr-defined]


def test_the_echo_client_crosses_hosts(stack: ComposeStack) -> None:
    result = stack.start_python(source(echo_client), "server", ECHO, "hello from afar").wait(60)
    assert result.exit_code == 0, result
    here, there = re.search(r"connected from (\S+) port \d+ to (\S+) port", result.stdout).groups()  # type: ignore[union-attr]
    assert there in (stack.ip_of("server", 4), stack.ip_of("server", 6)), there
    assert here != there and stack.on_network(here), here
    assert "the echo matches: 'hello from afar'" in result.stdout


def test_recv_returns_pieces_across_hosts(stack: ComposeStack) -> None:
    result = stack.start_python(source(pieces), "recv", "server", ECHO).wait(60)
    assert result.exit_code == 0, result
    calls = int(re.search(r"came in (\d+) recv\(\) calls", result.stdout).group(1))  # type: ignore[union-attr]
    assert calls > 16, result.stdout  # 1 MiB never comes in one piece
    assert "1048576 bytes in all, all there" in result.stdout


def test_the_udp_pair_from_one_container_to_another(stack: ComposeStack) -> None:
    server = stack.start_python(source(udp_server), "::", "7000", "1")
    server_ip = stack.address_of(server.container)
    client = stack.start_python(source(udp_client), server_ip, "7000", "a datagram").wait(60)
    assert client.exit_code == 0, client
    assert (
        f"echo from {server_ip} port 7000" in client.stdout and "the echo matches" in client.stdout
    )
    served = server.wait(30)
    assert served.exit_code == 0, served
    # an IPv4 client, seen through the dual-stack socket as ::ffff:a.b.c.d
    sender = re.search(r"10 bytes from ::ffff:(\S+) port", served.stdout).group(1)  # type: ignore[union-attr]
    assert sender != server_ip and stack.on_network(sender), served.stdout


def test_send_takes_less_when_the_peer_across_the_network_does_not_read(
    stack: ComposeStack,
) -> None:
    holder = stack.start_python(source(pieces), "hold", "7001")
    holder_ip = stack.address_of(holder.container)
    result = stack.start_python(source(pieces), "send", holder_ip, "7001").wait(60)
    assert result.exit_code == 0, result
    returned = [int(n) for n in re.findall(r"returned (\d+)", result.stdout)]
    assert returned and any(n < 1 << 20 for n in returned), result.stdout
    assert "then none for 1 s" in result.stdout
    holder.container.kill()


def test_nc_from_another_container_talks_to_the_server(stack: ComposeStack) -> None:
    """docs/learn.md: `docker compose --profile tools run --rm tools nc server 65434`."""
    greet = str(registry.default_port("greeting"))
    greeting = stack.start_container("tools", ["nc", "-w", "5", "server", greet]).wait(60)
    assert greeting.exit_code == 0 and greeting.stdout.startswith("Hello from "), greeting
    echo = stack.start_container(
        "tools", ["sh", "-c", f"printf 'typed by hand' | nc -N -w 5 server {ECHO}"]
    ).wait(60)
    assert echo.exit_code == 0 and echo.stdout == "typed by hand", echo


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_published_ports_are_on_this_hosts_loopback_only_and_only_when_asked(
    stack: ComposeStack,
) -> None:
    """`make serve PUBLISH=1` (compose.publish.yaml): nc on this machine reaches the server on
    127.0.0.1; nothing is bound on any other address. Without it nothing is published."""
    echo, app, greet = free_ports(3)
    env = {
        "LAB_ECHO_PORT": str(echo),
        "LAB_UDP_PORT": str(echo),
        "LAB_APP_PORT": str(app),
        "LAB_GREET_PORT": str(greet),
    }
    with ComposeStack(env=env, overrides=(ROOT / "compose.publish.yaml",)) as published:
        bindings = published.container("server").attrs["HostConfig"]["PortBindings"]
        hosts = {b["HostIp"] for spec in bindings.values() for b in spec}
        assert len(bindings) == 4 and hosts == {"127.0.0.1"}, bindings
        with socket.create_connection(("127.0.0.1", greet), timeout=10) as sock:
            line = sock.makefile("rb").readline()
        assert line.startswith(b"Hello from "), line
        with socket.create_connection(("127.0.0.1", echo), timeout=10) as sock:
            sock.sendall(b"from the host")
            sock.shutdown(socket.SHUT_WR)
            assert sock.makefile("rb").read() == b"from the host"
    assert not stack.container("server").attrs["HostConfig"]["PortBindings"]  # compose.yaml
