"""Faults real networks produce, injected through the Docker SDK. Each test states the expected
outcome and checks that nothing was lost or corrupted (every echo is checked by sha256)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import hostile_peers
import pytest
from lab import registry
from labstack import ComposeStack, NotYet, wait_for
from labstack.stack import event_matches

pytestmark = pytest.mark.slow

IDLE_TIMEOUT_S = 5
HOSTILE_SOURCE = Path(hostile_peers.__file__).read_text()


@pytest.fixture(scope="module")
def faults() -> Iterator[ComposeStack]:
    """A stack of this module's own (its server is killed, paused and cut off), with a short
    idle timeout so that abandoned connections are freed within the test."""
    with ComposeStack(env={"LAB_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)}) as stack:
        yield stack


@pytest.fixture
def healthy(faults: ComposeStack) -> Iterator[ComposeStack]:
    """Each test starts and ends with a healthy, unshaped, connected server."""
    yield faults
    server = faults.container("server")
    server.reload()
    if server.status == "paused":
        server.unpause()
    if faults.network_name not in server.attrs["NetworkSettings"]["Networks"]:
        faults.reconnect(server, "server")
    server.reload()
    if server.status != "running":
        server.start()
    faults.wait_healthy("server")


def test_1_server_killed_and_restarted_while_clients_work(healthy: ComposeStack) -> None:
    """SIGKILL mid-work, restart: the client retries and every one of its echoes is intact."""
    mark = healthy.log_mark()
    # Each exchange sends 4 chunks 0.5 s apart, and the kill follows the sight of one under way
    # (open, not closed) after one completed: it lands mid-exchange however slowly a busy
    # machine lets us read the log (at 0.05 s a chunk it once landed between two exchanges:
    # the client only waited to connect, and ran nothing again).
    client = healthy.start_client(
        "echo",
        "--size",
        "256KiB",
        "--pace",
        "0.5",
        "--repeat",
        "6",
        "--retries",
        "10",
        "--deadline",
        "60",
    )
    client_ip = healthy.address_of(client.container, 4)

    def under_way() -> None:
        events = healthy.server_events(mark, peer_ip=client_ip)
        opened = {e["conn"] for e in events if e["event"] == "open"}
        closed = {e["conn"] for e in events if e["event"] == "closed"}
        if not closed or not opened - closed:  # real work done, and an exchange going on
            raise NotYet(f"connections opened {sorted(opened)}, closed {sorted(closed)}")

    wait_for("an exchange under way after one completed", under_way, 30)
    healthy.kill_service("server")
    healthy.wait_for_log(client.container, "again")  # it noticed, and is retrying
    healthy.start_service("server")
    result = client.wait(120)
    assert result.exit_code == 0, result
    assert result.completed == result.repeats == 6 and result.all_ok
    assert result.retried >= 1
    assert result.last["digest_ok"]


def test_2_sigterm_during_an_exchange_lets_it_finish_and_exits_0(healthy: ComposeStack) -> None:
    """SIGTERM while 1 MiB is being sent slowly: that exchange completes on its connection,
    then the server exits 0 well within the grace period (no SIGKILL)."""
    mark = healthy.log_mark()
    client = healthy.start_client("echo", "--size", "1MiB", "--pace", "0.1", "--retries", "0")
    client_ip = healthy.address_of(client.container, 4)
    healthy.wait_for_server_event(mark, event="open", peer_ip=client_ip)
    server = healthy.container("server")
    server.stop(timeout=10)
    server.reload()
    assert server.attrs["State"]["ExitCode"] == 0  # 137 would mean it had to be killed
    result = client.wait(60)
    assert result.exit_code == 0, result
    assert result.digest_ok and result.retries == 0 and result.received == 1 << 20
    events = healthy.server_events(mark)
    (drain,) = [i for i, e in enumerate(events) if e["event"] == "draining"]
    # In flight: the client's connection, and a health check's probe if one was under way (the
    # probes come from loopback and are logged at DEBUG: 2 once in CI).
    assert events[drain]["signal"] == "SIGTERM" and events[drain]["in_flight"] >= 1, events[drain]
    after = events[drain:]
    (closed,) = [e for e in after if event_matches(e, {"event": "closed", "peer_ip": client_ip})]
    assert closed["rx"] == closed["tx"] == 1 << 20, closed  # the whole exchange, after SIGTERM


def test_3_paused_server_gives_timeouts_then_works_again(healthy: ComposeStack) -> None:
    """Frozen server: TCP and UDP clients fail with 'timed out' (exit 4), then succeed."""
    healthy.container("server").pause()
    tcp = healthy.run_client("echo", "--timeout", "2", "--deadline", "2", "--retries", "0")
    udp = healthy.run_client("udp", "--reply-timeout", "0.3", "--retries", "2")
    healthy.container("server").unpause()
    assert tcp.exit_code == 4, tcp
    assert "no progress for 2s" in tcp.error
    assert udp.exit_code == 4, udp
    assert "no echo of datagram 0 after 3 tries" in udp.error
    assert healthy.run_client("echo", "--size", "1MiB").digest_ok
    assert healthy.run_client("udp").echoed == 3


def test_4_partition_then_reconnect(healthy: ComposeStack) -> None:
    """Server cut off the network: an exchange in flight times out (exit 4), a new client cannot
    reach it (exit 3); once reconnected, clients work again."""
    mark = healthy.log_mark()
    in_flight = healthy.start_client(
        "echo", "--size", "2MiB", "--pace", "0.1", "--timeout", "3", "--retries", "0"
    )
    healthy.wait_for_server_event(
        mark, event="open", peer_ip=healthy.address_of(in_flight.container, 4)
    )
    server = healthy.container("server")
    healthy.disconnect(server)
    stalled = in_flight.wait(60)
    newcomer = healthy.run_client("echo", "--deadline", "3")
    healthy.reconnect(server, "server")
    assert stalled.exit_code == 4, stalled
    assert "no progress for 3s" in stalled.error
    assert newcomer.exit_code == 3, newcomer
    assert "unreachable after" in newcomer.error
    after = healthy.run_client("echo", "--size", "256KiB", "--deadline", "30")
    assert after.exit_code == 0 and after.digest_ok, after
    assert after.peer_ip == healthy.ip_of("server", 4)


def test_5_client_cut_off_mid_exchange_is_freed_and_others_unaffected(
    healthy: ComposeStack,
) -> None:
    """A client vanishes mid-exchange (every packet it sends is dropped, so its address stays
    its own: disconnected, the address went to the next client, whose kernel reset the server's
    retransmissions): the server frees its connection after the idle timeout; another client
    is served meanwhile."""
    mark = healthy.log_mark()
    gone = healthy.start_client(
        "echo", "--size", "4MiB", "--pace", "0.1", "--retries", "0", "--timeout", "60"
    )
    gone_ip = healthy.address_of(gone.container, 4)
    peer = healthy.wait_for_server_event(mark, event="open", peer_ip=gone_ip)["peer"]
    assert healthy.silence(gone.container) in ("netem", "tbf+nft")
    other = healthy.run_client("echo", "--size", "1MiB")
    assert other.exit_code == 0 and other.digest_ok, other
    closing = healthy.wait_for_server_event(mark, IDLE_TIMEOUT_S + 10, event="closed", peer=peer)
    assert closing["reason"].startswith(f"idle for {IDLE_TIMEOUT_S}s"), closing
    assert other.local_ip != gone_ip  # the vanished client's address was not handed on


def test_6_delay_and_loss_on_the_servers_traffic(healthy: ComposeStack) -> None:
    """Delay and loss on the server's traffic (netem, or nft+tbf where the kernel has no netem;
    applied from a helper with NET_ADMIN in its namespace): TCP data arrives intact; the UDP
    client sees losses, resends, and gets every datagram back."""
    baseline = healthy.run_client("echo", "--size", "512KiB")
    try:
        method = healthy.shape("server", delay_ms=20, loss_pct=5)
        tcp = healthy.run_client("echo", "--size", "512KiB", "--timeout", "30")
        healthy.shape("server", delay_ms=20, loss_pct=20)
        udp = healthy.run_client(
            "udp", "--count", "100", "--reply-timeout", "0.25", "--retries", "10"
        )
    finally:
        healthy.shape("server")
    print(
        f"shaped with {method}: 512 KiB echo {baseline.elapsed_ms:.0f} ms -> "
        f"{tcp.elapsed_ms:.0f} ms; UDP resent {udp.data.get('resent')} of 100"
    )
    assert method in ("netem", "tbf+nft")
    assert tcp.exit_code == 0 and tcp.digest_ok, tcp
    assert tcp.elapsed_ms > baseline.elapsed_ms + 40  # the shaping really applied
    assert udp.exit_code == 0, udp
    assert udp.echoed == 100
    assert udp.resent > 0  # 20% loss over 100 datagrams: P(no loss) is about 2e-10
    host = healthy.container("server").attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]


def test_7_client_killed_while_sending_a_frame(healthy: ComposeStack) -> None:
    """A client dies with half a frame sent: the server drops that connection (one log line)
    and keeps serving others."""
    half_frame = "0067" + "7b2262797465"  # a length of 103, then the first bytes of the header
    mark = healthy.log_mark()
    dying = healthy.start_client(
        "raw", "--port", str(registry.default_port("app")), "--hex", half_frame, "--timeout", "60"
    )
    dying_ip = healthy.address_of(dying.container, 4)  # our client prefers IPv4
    peer = healthy.wait_for_server_event(mark, event="open", peer_ip=dying_ip)["peer"]
    dying.container.kill()
    closed = healthy.wait_for_server_event(mark, event="closed", peer=peer)
    assert closed["reason"] in ("bad frame: truncated", "reset by peer"), closed
    answer = healthy.run_client("app", "search", "ring")
    assert answer.exit_code == 0 and "Misty Mountains" in answer.result
    assert "Traceback" not in healthy.server_log()


def test_8_slow_reader_does_not_block_others(healthy: ComposeStack) -> None:
    """A client that sends echo data but never reads: the server stops reading from it once its
    buffer is full (bounded memory); others are served at full speed meanwhile."""
    before = healthy.memory_bytes("server")
    mark = healthy.log_mark()
    reader = healthy.start_python(
        HOSTILE_SOURCE, "slow-reader", "server", str(registry.default_port("tcp-echo")), "30"
    )
    healthy.wait_for_log(reader.container, "stalled_after_bytes")
    others = healthy.run_client("echo", "--size", "1MiB", "--connections", "10", "--timeout", "5")
    during = healthy.memory_bytes("server")
    peer = json.loads(reader.logs().splitlines()[0])["local"]  # an IPv4 or IPv6 endpoint
    peer = f"[{peer.rsplit(':', 1)[0]}]:{peer.rsplit(':', 1)[1]}" if peer.count(":") > 1 else peer
    closing = healthy.wait_for_server_event(mark, IDLE_TIMEOUT_S + 10, event="closed", peer=peer)
    assert others.exit_code == 0 and others.all_ok, others
    assert during - before < 16 << 20, (before, during)
    assert "bytes unsent" in closing["reason"]  # freed by the idle timeout, blocked on the reader
