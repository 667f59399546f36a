"""The client keeps trying while the server is away, and finishes when it is back."""

from __future__ import annotations

from labstack import ComposeStack, NotYet, wait_for


def test_client_completes_when_server_restarts_while_it_retries(own_stack: ComposeStack) -> None:
    own_stack.stop_service("server")
    client = own_stack.start_client("echo", "--size", "256KiB", "--deadline", "60")
    own_stack.wait_for_log(client.container, "not reachable yet")  # it is retrying now
    own_stack.start_service("server")
    result = client.wait(timeout_s=90)
    assert result.exit_code == 0, result
    assert result.digest_ok
    assert result.attempts > 1
    assert result.peer_ip == own_stack.ip_of("server", 4)


def test_client_gives_up_clearly_when_server_never_comes(own_stack: ComposeStack) -> None:
    result = own_stack.run_client("echo", "--host", "nosuchserver", "--deadline", "1")
    assert result.exit_code == 3, result
    assert result.ok is False
    assert "unreachable after" in result.error
    assert result.stderr.strip().splitlines()[-1].startswith("client: error: nosuchserver")


def test_a_server_that_really_dies_is_brought_back_by_its_restart_policy(
    own_stack: ComposeStack,
) -> None:
    """`restart: unless-stopped`: a crash (SIGKILL from outside) is followed by a restart and
    the service is healthy again. (Everywhere else the suite shows the same process survives.)"""
    pid, started_at, restarts = own_stack.process_identity()
    own_stack.crash("server")

    def restarted() -> None:
        now = own_stack.process_identity()
        if now[2] != restarts + 1 or now[0] in (0, pid):
            raise NotYet(f"server is pid {now[0]}, restarted {now[2]} times")

    wait_for("the server to be restarted", restarted, 30)
    own_stack.wait_healthy("server")
    assert own_stack.process_identity()[1] != started_at
    assert own_stack.run_client("greet").exit_code == 0


def test_healthy_when_bound_to_ipv6_loopback_only() -> None:
    """The health check probes the address the server listens on (it once probed 127.0.0.1
    whatever LAB_BIND said, and a server on ::1 was unhealthy forever)."""
    with ComposeStack(env={"LAB_BIND": "::1"}) as stack:  # `up` waits for healthy
        status, output = stack.healthcheck()
        assert status == 0 and output.endswith("answered on ::1"), output
