"""The client keeps trying while the server is away, and finishes when it is back."""

from __future__ import annotations

from harness import ComposeStack


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
