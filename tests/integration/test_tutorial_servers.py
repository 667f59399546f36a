"""The tutorial's steps as servers (LAB_SERVER), each across containers: what it does, and the
limit it runs into, measured. One stack per implementation; the last test stops it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import learner_peers
import pytest
from lab import registry
from labstack import ComposeStack, NotYet, wait_for
from labstack.clients import BackgroundExec

pytestmark = pytest.mark.slow

ECHO = str(registry.default_port("tcp-echo"))
SOURCE = Path(learner_peers.__file__).read_text()
IMPLEMENTATIONS = ["blocking", "threaded", "multiconn", "lab"]
LOOPS = ("multiconn", "lab")  # one thread, a selector
PIDS_LIMIT = 64  # compose.yaml's pids_limit: the threaded server's ceiling


class StepStack(ComposeStack):
    """A stack whose server is one of the tutorial's steps (or the lab's own)."""

    def __init__(self, implementation: str) -> None:
        # The lab's per-address cap (128) would turn the 1,000 idle clients of one container
        # away: lifted here, as the benchmark does (the hostile-peer tests cover the cap).
        super().__init__(env={"LAB_SERVER": implementation, "LAB_MAX_CONNECTIONS_PER_IP": "0"})
        self.implementation = implementation


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Iterator[StepStack]:
    with StepStack(request.param) as stack:
        yield stack


def peer(stack: ComposeStack, *args: str) -> BackgroundExec:
    """A learner's peer on another host than the server's: the stack's client host, where it
    runs as an exec (none of these tests needs a peer with an address of its own)."""
    return stack.exec_python(SOURCE, args[0], "server", ECHO, *args[1:])


def result_of(run: BackgroundExec, timeout_s: float = 120) -> dict:
    status = run.wait(timeout_s)
    assert status == 0, f"the peer's exec ended {status}: {run.output[-2000:]}"
    return json.loads(run.output.strip().splitlines()[-1])


def threads(stack: ComposeStack) -> int:
    """The server process's threads (from `docker top`: at its pids limit the threaded server
    leaves no room for an exec)."""
    return stack.process_figure("server", "nlwp")


def cpu_wanted_seconds(stack: ComposeStack) -> float:
    """How long the server process has run on a CPU or waited in a run queue for one
    (/proc/1/schedstat, nanoseconds). A loop that spins wants a whole core whether or not it
    gets one: on a busy machine it waits, and the time it runs alone would say less."""
    code, out = stack.container("server").exec_run(["cat", "/proc/1/schedstat"])
    assert code == 0, out
    ran, waited, _ = out.split()
    return (int(ran) + int(waited)) / 1e9


def holding(stack: ComposeStack, *args: str) -> tuple[BackgroundExec, int]:
    """Start an ``idle`` peer and wait until its clients are connected and idle."""
    run = peer(stack, "idle", *args)
    return run, int(run.wait_for_output("holding", within_s=90).split()[1])


def test_health_check_probes_what_it_serves(impl: StepStack) -> None:
    code, output = impl.healthcheck()
    assert code == 0, output
    probed = output.removeprefix("healthy: ").split(" answered on ")[0].split(", ")
    served = registry.served_by(impl.implementation)
    assert sorted(probed) == sorted(row.name for row in served), output


def test_demo_asks_only_for_what_the_server_serves(impl: StepStack) -> None:
    result = impl.run_client("demo", "--server", impl.implementation)
    assert result.exit_code == 0, result
    assert result.crossed_hosts
    per_family = 6 if impl.implementation == "lab" else 1
    assert len(result.exchanges) == 2 * per_family  # IPv4 and IPv6


def test_a_second_client_waits_only_for_the_blocking_server(impl: StepStack) -> None:
    hold_s = 1.5
    out = result_of(peer(impl, "wait", str(hold_s)))
    if impl.implementation == "blocking":
        # B's handshake completed in the backlog, but nothing it sent was read until A left.
        assert out["b_served_while_a_open_s"] is None
        assert out["b_waited_s"] >= hold_s
    else:
        assert out["b_served_while_a_open_s"] is not None
        assert out["b_served_while_a_open_s"] < 0.5


def test_threads_grow_with_clients_only_in_the_threaded_server(impl: StepStack) -> None:
    before = threads(impl)
    # Each client's echo may take this long: short for the blocking server, whose clients after
    # the first wait unserved by design; ample for the others, which serve every one (0.3 s
    # there failed once on a busy machine: 19 of 20 served).
    patience = "0.3" if impl.implementation == "blocking" else "3"
    run, served = holding(impl, "20", "3", patience)
    during = threads(impl)
    out = result_of(run)
    assert out["served"] == served
    if impl.implementation == "threaded":
        assert served == 20 and during >= before + 20  # a thread per connected client

        def back() -> None:
            if threads(impl) != before:
                raise NotYet(f"{threads(impl)} threads")

        wait_for("the client threads to end", back, 15)
    elif impl.implementation == "blocking":
        assert served == 1 and during == 1  # the other 19 waited in the backlog, unserved
    else:
        assert served == 20 and during == 1  # one thread for all of them


def test_idle_clients_by_the_thousand(impl: StepStack) -> None:
    """The loops hold 1,000 idle clients in one thread; the threaded server stops near its
    pids limit; the blocking one serves the first of a few."""
    count = {"blocking": 5, "threaded": 200}.get(impl.implementation, 1000)
    # short where clients are expected to wait unserved (the blocking server, and the threaded
    # one past its pids limit), ample where each is expected to be served
    run, served = holding(impl, str(count), "2", "3" if impl.implementation in LOOPS else "0.5")
    during, memory = threads(impl), impl.memory_bytes("server")
    out = result_of(run)
    print(
        f"{impl.implementation}: {served} of {count} idle clients served, {during} thread(s), "
        f"{memory / 2**20:.1f} MiB"
    )
    if impl.implementation in LOOPS:
        assert served == count and during == 1
        assert out["fresh_echo_s"] is not None  # and a new client is still served
        assert memory < 64 << 20
    elif impl.implementation == "threaded":
        assert 0 < served < PIDS_LIMIT  # each thread is a task under the pids limit
        assert out["not_served"] == count - served
        assert "can't start new thread" in impl.server_log()
    else:
        assert served == 1


def test_cpu_while_clients_sit_idle(impl: StepStack) -> None:
    """The tutorial's loop registers every socket for writing, so select() never waits."""
    count = "1" if impl.implementation == "blocking" else "10"
    run, _ = holding(impl, count, "3")
    before, started = cpu_wanted_seconds(impl), time.monotonic()
    out = result_of(run)  # the clients stay idle until the peer ends
    share = (cpu_wanted_seconds(impl) - before) / (time.monotonic() - started)
    print(f"{impl.implementation}: wanted {share:.0%} of a core while {count} client(s) sat idle")
    assert out["served"] == int(count)
    if impl.implementation == "multiconn":
        assert share > 0.5  # it spins
    else:
        assert share < 0.1


def test_a_client_that_never_reads(impl: StepStack) -> None:
    size = 4 << 20
    before = impl.memory_bytes("server")
    # It holds (never reading) for 30 s after sending: longer than this test looks, however
    # busy the machine; the test stops it once the server's memory is read. It stops sending
    # once the server has taken nothing for 2 s (the others stop reading it), but waits 10 s
    # on multiconn, which takes everything: spinning on a busy machine, it once took nothing
    # for 2 s, and the reader stopped at 3.7 of its 4 MiB.
    patience = "10" if impl.implementation == "multiconn" else "2"
    slow = peer(impl, "slow-reader", str(size), "30", patience)
    sent = int(slow.wait_for_output("sent", within_s=30).split()[1])
    if impl.implementation == "multiconn":  # it reads the kernel's buffers into outb meanwhile

        def took_it_in() -> None:
            if impl.memory_bytes("server") - before <= 2 << 20:
                raise NotYet(f"grown {(impl.memory_bytes('server') - before) >> 10} KiB")

        wait_for("multiconn to read what the slow reader sent", took_it_in, 20, every_s=0.2)
    other = result_of(peer(impl, "idle", "1", "0", "1.5"))
    grown = impl.memory_bytes("server") - before  # 1.5 s or more after the sender stopped
    assert slow.wait(0) is None, "the slow reader let go before memory was read"
    slow.stop()
    print(
        f"{impl.implementation}: a client sent {sent} bytes without reading; the server grew "
        f"{grown / 2**20:.1f} MiB; another client served: {other['served'] == 1}"
    )
    if impl.implementation == "blocking":
        assert other["served"] == 0  # stuck in sendall() to the reader that never reads
    else:
        assert other["served"] == 1
    if impl.implementation == "multiconn":
        # It read everything into outb: its growth past 2 MiB was waited for above (took_it_in
        # fails the test otherwise). Read again later, it had moved (1.9 MiB seen once on a busy
        # machine) as the kernel took part of outb into the reader's buffers.
        assert sent == size
    if impl.implementation == "lab":
        assert grown < 2 << 20  # it stopped reading: back-pressure (write_buffer_bytes)


def test_sigterm(impl: StepStack) -> None:
    """Each stops on SIGTERM with exit 0; a connected client sees its connection closed."""
    run, _ = holding(impl, "1", "20")
    server = impl.container("server")
    started = time.monotonic()
    server.kill(signal="SIGTERM")
    status = server.wait(timeout=30)
    took = time.monotonic() - started
    print(f"{impl.implementation}: exited {status['StatusCode']} {took:.1f}s after SIGTERM")
    assert status["StatusCode"] == 0
    assert took < 6  # the lab drains for at most LAB_SHUTDOWN_GRACE_S (5 s); the others at once
    if impl.implementation != "lab":
        assert took < 2
    run.stop()
