"""The soak's checker must be able to fail: the generator runs on loopback against servers with
bugs put in on purpose, and the checker must find each bug as the right violation; against the
lab's own server, none. Then the checker's arithmetic on histories written by hand."""

from __future__ import annotations

import contextlib
import io
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from labprobe.soak import Generator, History
from labsoak import checker, run
from labsoak.nemesis import NETWORK_FAULTS, PROCESS_FAULTS, Nemesis, Planned, schedule
from labstack.stack import StackError

RUN_S = 2.0
Handler = Callable[[socket.socket], None]


def generate(
    ports: dict[str, int], kinds: tuple[str, ...], trusting: bool = False, host: str = "127.0.0.1"
) -> list[checker.Operation]:
    out = io.StringIO()
    generator = Generator(host, RUN_S, "test", History(out, "w1"), trusting)
    generator.ports.update(ports)
    generator.run(kinds)
    return checker.judge(checker.read_history(out.getvalue().splitlines()))


def outcomes(ops: list[checker.Operation]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op.outcome] = counts.get(op.outcome, 0) + 1
    return counts


@pytest.fixture
def tcp_server() -> Iterator[Callable[[Handler], int]]:
    """A threaded TCP server on loopback running ``handler`` on each connection."""
    listeners: list[socket.socket] = []

    def start(handler: Handler) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        listeners.append(listener)

        def serve(conn: socket.socket) -> None:
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    handler(conn)

        def accept() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for listener in listeners:
        listener.close()


def read_to_eof(conn: socket.socket) -> bytes:
    data = bytearray()
    while chunk := conn.recv(65536):
        data += chunk
    return bytes(data)


def test_against_the_labs_server_nothing_is_violated(local_server) -> None:
    ports = local_server.ports
    ops = generate(
        {
            "echo": ports["tcp-echo"],
            "udp": ports["udp-echo"],
            "app": ports["app"],
            "greet": ports["greeting"],
        },
        ("echo", "echo-long", "udp", "app", "greet"),
    )
    counts = outcomes(ops)
    assert counts.get("corrupt", 0) == counts.get("lost", 0) == 0, [
        o.to_json() for o in ops if o.outcome in checker.VIOLATIONS
    ][:3]
    assert counts["ok"] > 100 and {o.kind for o in ops if o.outcome == "ok"} == {
        "echo",
        "echo-long",
        "udp",
        "app",
        "greet",
    }


def test_a_server_that_swaps_two_connections_replies_is_caught(tcp_server) -> None:
    """Each connection gets the echo of the one before it: a reply meant for another."""
    previous: list[bytes] = []
    lock = threading.Lock()

    def swapping(conn: socket.socket) -> None:
        mine = read_to_eof(conn)
        with lock:
            theirs = previous.pop() if previous else mine
            previous.append(mine)
        conn.sendall(theirs)

    ops = generate({"echo": tcp_server(swapping)}, ("echo",))
    corrupt = [o for o in ops if o.outcome == "corrupt"]
    assert corrupt, outcomes(ops)
    assert all(o.why.startswith("the reply was meant for w1.e") for o in corrupt), corrupt[0]


def test_a_server_that_drops_a_datagram_and_echoes_the_next_twice_is_caught() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        count = 0
        twice = False
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            count += 1
            if count % 5 == 0:
                twice = True  # this one is dropped...
                continue
            sock.sendto(data, peer)
            if twice:  # ...and the next one echoed twice
                sock.sendto(data, peer)
                twice = False

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        ops = generate({"udp": sock.getsockname()[1]}, ("udp",))
    finally:
        stop.set()
        thread.join(2)
        sock.close()
    corrupt = [o for o in ops if o.outcome == "corrupt"]
    failed = [o for o in ops if o.outcome == "failed"]
    assert corrupt and all("came twice" in o.why for o in corrupt), outcomes(ops)
    assert failed and all("no echo" in o.why for o in failed)  # the drops: clear failures


def test_a_client_that_reports_success_without_checking_is_caught(tcp_server) -> None:
    def flips_a_byte(conn: socket.socket) -> None:
        data = bytearray(read_to_eof(conn))
        if data:
            data[len(data) // 2] ^= 0xFF
        conn.sendall(bytes(data))

    ops = generate({"echo": tcp_server(flips_a_byte)}, ("echo",), trusting=True)
    assert {o.said for o in ops if o.end is not None} == {"ok"}  # the client saw no problem
    corrupt = [o for o in ops if o.outcome == "corrupt"]
    assert corrupt and len(corrupt) == len([o for o in ops if o.end is not None])
    assert all(o.why == "the client said ok to what was not due" for o in corrupt)


def test_a_truthful_client_reports_the_same_bytes_as_a_failure_not_ok(tcp_server) -> None:
    def flips_a_byte(conn: socket.socket) -> None:
        data = bytearray(read_to_eof(conn))
        if data:
            data[0] ^= 0xFF
        conn.sendall(bytes(data))

    ops = generate({"echo": tcp_server(flips_a_byte)}, ("echo",))
    assert ops and all(o.said == "failed" for o in ops if o.end is not None)
    # wrong bytes are a violation whatever the client said
    assert all(o.outcome == "corrupt" and o.why.startswith("wrong bytes") for o in ops)


def test_an_operation_without_an_end_is_lost() -> None:
    lines = [
        '{"s": "w1.e1", "kind": "echo", "t": 10.0}',
        '{"s": "w1.e2", "kind": "echo", "t": 11.0}',
        '{"e": "w1.e2", "t": 11.5, "outcome": "ok", "sent": "aa", "sent_len": 3, "got": "aa",'
        ' "got_len": 3, "sent_prefix": "aa"}',
        "not json at all",
    ]
    ops = checker.judge(checker.read_history(lines))
    assert [(o.id, o.outcome) for o in ops] == [("w1.e1", "lost"), ("w1.e2", "ok")]


def test_a_partial_echo_with_an_error_is_a_clear_failure() -> None:
    lines = [
        '{"s": "w1.e1", "kind": "echo", "t": 1.0}',
        '{"e": "w1.e1", "t": 2.0, "outcome": "failed", "error": "Failed: 3 of 9 bytes back",'
        ' "sent": "aa", "sent_len": 9, "got": "bb", "got_len": 3, "sent_prefix": "bb"}',
    ]
    (op,) = checker.judge(checker.read_history(lines))
    assert op.outcome == "failed" and "3 of 9" in op.why


def test_availability_and_recovery_per_fault_kind() -> None:
    ops = []
    for i in range(10):  # one echo a second, 0..9; those at 3, 4 and 5 failed
        op = checker.Operation(f"w1.e{i}", "echo", float(i), float(i) + 0.5)
        op.outcome = "failed" if i in (3, 4, 5) else "ok"
        ops.append(op)
    faults = [checker.Fault("pause", 3.0, 5.8)]
    summary = checker.faults_summary(ops, faults)["pause"]
    assert summary["operations"] == 3 and summary["availability"] == 0.0
    assert summary["recovery_p50_s"] == pytest.approx(0.7)  # the op at 6 ends at 6.5


def test_the_nemesis_schedule_is_seeded_and_its_tracks_do_not_overlap_themselves() -> None:
    tracks = (PROCESS_FAULTS, NETWORK_FAULTS)
    first, again = schedule("s1", 120, tracks), schedule("s1", 120, tracks)
    assert first == again and schedule("s2", 120, tracks) != first
    for plan in first:
        assert plan, "a track with no fault"
        for a, b in itertools.pairwise(plan):
            assert a.at + a.seconds < b.at  # one fault of a track at a time
        assert plan[-1].at + plan[-1].seconds <= 120
    kinds = {p.kind for plan in first for p in plan}
    assert len(kinds) >= 6  # most kinds come up within two minutes


@pytest.mark.parametrize("seed", ["s1", "s2", "cluster-test-1", "x"])
def test_every_kind_of_a_track_comes_once_before_any_comes_twice(seed: str) -> None:
    """A short run (the cluster test's 45 s) still sees different faults."""
    tracks = (PROCESS_FAULTS, NETWORK_FAULTS, ("task-kill", "node-loss", "rolling-update"))
    for kinds, plan in zip(tracks, schedule(seed, 600, tracks), strict=True):
        seen = [p.kind for p in plan]
        for start in range(0, len(seen) - len(kinds) + 1, len(kinds)):
            assert sorted(seen[start : start + len(kinds)]) == sorted(kinds), seen


def test_a_target_that_is_not_ready_skips_the_fault_and_says_why() -> None:
    applied: list[str] = []

    class NeverReady(Nemesis):
        def ready(self, within_s: float) -> None:
            raise StackError(f"gave up after {within_s:.0f}s: 0 of 2 tasks running")

        def apply(self, kind: str) -> None:
            applied.append(kind)

        def undo(self, kind: str, state: object) -> None:
            return None

        def ensure_healthy(self) -> None:
            return None

    nemesis = NeverReady("s1", 20, tracks=(("task-kill",),))
    nemesis._track([Planned(0.0, "task-kill", 1.0, 0.0)], time.monotonic())
    assert applied == [] and nemesis.faults == []
    assert nemesis.failures and all("0 of 2 tasks running" in f for f in nemesis.failures)


def test_a_saved_history_checks_again_the_same(tmp_path: Path) -> None:
    """--check reads a run's history back: the checker alone, on what was saved."""
    lines = [
        '{"s":"w1.e1","kind":"echo","t":1.0}',
        '{"e":"w1.e1","t":1.5,"outcome":"ok","sent":"aa","sent_len":3,"got":"aa","got_len":3,'
        '"sent_prefix":"aa"}',
        '{"s":"w1.e2","kind":"echo","t":2.0}',
    ]
    report, ops = run.check(lines, [], started="2026-12-01T00:00:00Z", seed="x", seconds=1)
    run.write(tmp_path, report, ops, lines)
    code = run.main(["--check", str(tmp_path / "latest-history.jsonl.gz")])
    assert code == 1  # w1.e2 never ended: lost, a violation
