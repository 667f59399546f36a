"""The conformance kit's parts that need no Docker: the socket table, the report (JSON, JUnit,
table), the captures cut per case, the command line, and the server cases themselves against
servers on loopback (a right one and wrong ones), including a server whose replies are hostile."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import struct
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt
import pytest
from labcheck import captures, kit, sockets
from labcheck.__main__ import main
from labcheck.report import Report
from labprobe import cases
from labstack import ROOT
from labstack.clients import LiveCapture

# /proc/net/tcp as a container shows it: 127.0.0.1:65432 listening, 0.0.0.0:65433 listening,
# a connection (state 01) that is not a listener.
TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 0100007F:FF98 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001
   1: 00000000:FF99 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001
   2: 0100007F:FF98 0100007F:D431 01 00000000:00000000 00:00000000 00000000 10001
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:FF9A 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000001000000:FF9B 00000000000000000000000000000000:0000 0A
"""
UDP = """  sl  local_address rem_address   st
   0: 0B00007F:8C3F 00000000:0000 07
   1: 00000000:FF98 00000000:0000 07
"""


def test_the_socket_table_shows_where_each_port_listens() -> None:
    bound = sockets.parse({"tcp": TCP, "tcp6": TCP6, "udp": UDP})
    shown = {(b.kind, b.shown()) for b in bound}
    assert shown == {
        ("tcp", "127.0.0.1:65432"),
        ("tcp", "0.0.0.0:65433"),
        ("tcp", "[::]:65434"),
        ("tcp", "[::1]:65435"),
        ("udp", "127.0.0.11:35903"),
        ("udp", "0.0.0.0:65432"),
    }
    loopback = {b.port for b in bound if b.loopback}
    assert loopback == {65432, 65435, 35903}
    assert {b.port for b in bound if b.wildcard} == {65433, 65434, 65432}


def _report() -> Report:
    report = Report("server.py", "server", ["echo"])
    report.add(
        {
            "id": "echo.small",
            "verdict": "pass",
            "expected": "e",
            "observed": "o",
            "hint": "",
            "duration_s": 0.5,
        }
    )
    report.add(
        {
            "id": "echo.large",
            "verdict": "fail",
            "expected": "4 MiB back",
            "observed": "12 of 4194304 bytes came back " * 8,
            "hint": "use sendall()",
            "duration_s": 1.25,
        }
    )
    report.add(
        {
            "id": "app.second-request",
            "verdict": "info",
            "expected": "e",
            "observed": "one request per connection",
            "hint": "",
            "duration_s": 0.1,
        }
    )
    report.not_applicable("udp.echo", "a datagram back", "not served")
    return report


def test_a_socket_table_is_read_once_every_port_is_open_or_no_more_open() -> None:
    """A program that binds its ports one after another is not graded on the first (the lab's
    own server was once graded without its app listener, read between two binds under load)."""
    echo, udp, greet, app = ("tcp", 65432), ("udp", 65432), ("tcp", 65434), ("tcp", 65433)
    now = [0.0]
    settling = sockets.Settling({echo, udp, greet, app}, settle_s=1.0, clock=lambda: now[0])
    assert settling.wait_reason(set()) == "none of its ports is open yet"
    assert settling.wait_reason({("tcp", 8080)}) == "none of its ports is open yet"
    assert settling.wait_reason({echo, udp, greet}) is not None  # three of four, just now
    now[0] = 0.6
    assert settling.wait_reason({echo, udp, greet}) is not None
    now[0] = 0.9
    assert settling.wait_reason({echo, udp, greet, app}) is None  # all: read at once
    now[0] = 1.5  # a program that serves three: read once they held still for 1 s
    assert settling.wait_reason({echo, udp, greet, ("tcp", 8080)}) is None
    now[0] = 0.0
    later = sockets.Settling({echo, udp, app}, settle_s=1.0, clock=lambda: now[0])
    assert later.wait_reason({echo}) is not None
    now[0] = 0.8
    assert later.wait_reason({echo, udp}) is not None  # one more bind restarts the wait
    now[0] = 1.2
    assert later.wait_reason({echo, udp}) is not None
    now[0] = 1.9
    assert later.wait_reason({echo, udp}) is None


def test_a_report_is_json_junit_and_a_table(tmp_path: Path) -> None:
    report = _report()
    assert report.exit_status == 1
    assert report.summary == {"pass": 1, "fail": 1, "info": 1, "n/a": 1}
    xml = report.write(tmp_path / "out" / "report.json")
    assert xml == tmp_path / "out" / "report.xml"
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["exit_status"] == 1 and [c["id"] for c in data["cases"]][1] == "echo.large"
    suite = ET.parse(xml).getroot()  # noqa: S314 (our own report)
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "2")
    (failure,) = suite.iter("failure")
    assert "hint: use sendall()" in (failure.text or "")
    out = io.StringIO()
    report.print_table(out)
    table = out.getvalue()
    assert "\033[" not in table  # no colour when not a terminal
    assert table.count("hint:") == 1 and "use sendall()" in table
    assert table.count("saw:") == 3  # a failure's, the informational's, the n/a's: once each
    assert "1 passed, 1 failed, 1 informational, 1 not applicable" in table

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    coloured = Terminal()
    report.print_table(coloured)
    assert "\033[31mFAIL" in coloured.getvalue()


def test_a_report_with_no_failure_exits_0() -> None:
    report = Report("x", "client", ["echo"])
    report.not_applicable("client.segments", "e", "why")
    assert report.exit_status == 0


def test_each_failed_case_gets_the_packets_of_its_own_time(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    writer = dpkt.pcap.Writer(buffer, linktype=dpkt.pcap.DLT_EN10MB)
    for when in (100.0, 100.5, 101.0, 105.0, 106.0):
        writer.writepkt(b"\x00" * 60, ts=when)
    report = Report("p", "server", ["echo"])
    report.add(
        {
            "id": "a.first",
            "verdict": "fail",
            "expected": "",
            "observed": "",
            "hint": "h",
            "duration_s": 0.6,
            "started": 100.2,
        }
    )
    report.add(
        {
            "id": "a.passed",
            "verdict": "pass",
            "expected": "",
            "observed": "",
            "hint": "",
            "duration_s": 1.0,
            "started": 105.0,
        }
    )
    report.add(
        {
            "id": "a.later",
            "verdict": "fail",
            "expected": "",
            "observed": "",
            "hint": "h",
            "duration_s": 0.1,
            "started": 106.0,
        }
    )
    written = captures.keep(buffer.getvalue(), report, tmp_path)
    assert [p.name for p in written] == ["a.first.pcap", "a.later.pcap"]
    times = [when for when, _ in dpkt.pcap.Reader(written[0].open("rb"))]
    assert times == [100.5, 101.0]  # from its start to half a second after its end
    assert report.cases[0]["capture"] == str(written[0]) and "capture" not in report.cases[1]


def test_the_command_line_has_help_and_says_why_it_cannot_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "Exit status" in capsys.readouterr().out
    assert main(["server", "--image", "x", "--protocols", "echo,smtp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "labcheck: cannot run the program: unknown protocols ['smtp'] (echo, udp, greet, app)"
    ]


# -- the cases themselves, against servers on loopback ---------------------------------------
Handler = Callable[[socket.socket], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], cases.Where]]:
    """A threaded TCP server on loopback with the given per-connection handler."""
    listeners: list[socket.socket] = []

    def start(handler: Handler) -> cases.Where:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        listeners.append(listener)

        def accept() -> None:
            while listener.fileno() != -1:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                conn.settimeout(5)
                threading.Thread(target=_closing(handler, conn), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        port = listener.getsockname()[1]
        hosts = dict.fromkeys(("echo", "app", "greet"), "127.0.0.1")
        return cases.Where(hosts, dict.fromkeys(("echo", "app", "greet"), port))

    yield start
    for listener in listeners:
        listener.close()


def _closing(handler: Handler, conn: socket.socket) -> Callable[[], None]:
    def run() -> None:
        with conn, contextlib.suppress(OSError):
            handler(conn)

    return run


def good_echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def one_recv(conn: socket.socket) -> None:
    conn.sendall(conn.recv(1024))


@pytest.mark.parametrize(
    ("handler", "case_id", "verdict"),
    [
        (good_echo, "echo.small", "pass"),
        (good_echo, "echo.bytewise", "pass"),
        (good_echo, "echo.half-close", "pass"),
        (good_echo, "echo.close-seen", "pass"),
        (one_recv, "echo.small", "pass"),
        (one_recv, "echo.bytewise", "fail"),
        (one_recv, "echo.half-close", "fail"),
    ],
)
def test_echo_cases_tell_a_right_server_from_a_wrong_one(
    serve: Callable[[Handler], cases.Where], handler: Handler, case_id: str, verdict: str
) -> None:
    result = cases.by_id(case_id).run(serve(handler))
    assert result.verdict == verdict, result
    assert bool(result.hint) == (verdict == "fail")


def starved_send_not_sendall(conn: socket.socket) -> None:
    """send() where sendall() belongs, on a non-blocking socket, in a server that runs slower
    than the kit's slow reader reads (as one starved of CPU on a busy machine does). Its send
    buffer is small, as the kernel starts one on a real network (on loopback, with its 64 KiB
    MTU, the kernel makes it megabytes from the start)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
    conn.setblocking(False)
    while True:
        time.sleep(0.05)  # about 1.3 MB/s of 64 KiB reads
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            continue
        if not data:
            return
        with contextlib.suppress(BlockingIOError):
            conn.send(data)  # what the kernel did not take is lost


@pytest.mark.parametrize(
    ("handler", "case_id", "verdict"),
    [
        (good_echo, "echo.large", "pass"),
        (starved_send_not_sendall, "echo.large", "fail"),
        (starved_send_not_sendall, "echo.half-close", "fail"),
    ],
)
def test_the_slow_reader_holds_back_until_the_servers_buffer_is_full(
    serve: Callable[[Handler], cases.Where], handler: Handler, case_id: str, verdict: str
) -> None:
    """A reader that only paused between reads let a slow server that drops what send() did
    not take pass: it sent no faster than the reader read, so its buffer never filled (seen in
    CI). Holding back until the client can send no more, or has sent everything, fills it."""
    result = cases.by_id(case_id).run(serve(handler))
    assert result.verdict == verdict, result


def _replies_with(payload: bytes) -> Handler:
    def handler(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(payload)

    return handler


@pytest.mark.parametrize(
    "reply",
    [
        struct.pack(">H", 20_000) + b"[" * 20_000,  # a header nested past the recursion limit
        struct.pack(">H", 2) + b"{}",  # no content-length
        struct.pack(">H", 26) + b'{"content-length": "many"}',
        b"\x00\x1d" + b'{"content-length": 999999999}',  # more than the kit reads
        struct.pack(">H", 4) + b"\xff\xfe\x00\x01",  # not UTF-8
    ],
)
def test_a_hostile_reply_is_a_verdict_not_a_crash(
    serve: Callable[[Handler], cases.Where], reply: bytes
) -> None:
    result = cases.by_id("app.search").run(serve(_replies_with(reply)))
    assert result.verdict == "fail", result
    assert result.observed and result.hint


def test_cases_that_do_not_apply_for_one_reason_are_one_line() -> None:
    report = Report("server.py", "server", ["echo"])
    for case_id in ("udp.echo", "udp.empty", "greet.line", "app.search"):
        report.not_applicable(case_id, "e", "not served")
    report.not_applicable("echo.slow-reader", "e", "unreachable")
    out = io.StringIO()
    report.print_table(out)
    lines = out.getvalue().splitlines()
    (grouped,) = [line for line in lines if "not served" in line]
    assert "4 cases, not served: udp.echo, udp.empty, greet.line, app.search" in grouped
    assert any("echo.slow-reader" in line for line in lines)  # alone: shown as it is
    assert "0 passed, 0 failed, 0 informational, 5 not applicable" in lines[-1]


def test_the_readme_counts_the_cases_there_are() -> None:
    text = " ".join((ROOT / "README.md").read_text().split())
    found = re.search(r"Each of (\d+) cases \((\d+) for a server, (\d+) for a client\)", text)
    assert found, "the README no longer counts the kit's cases"
    server, client = len(kit.SERVER_ORDER), len(kit.CLIENT_CASES)
    assert tuple(map(int, found.groups())) == (server + client, server, client)


def test_packets_tcpdump_dropped_are_a_note_in_the_report_not_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check's capture only helps to read failed cases: a busy machine that made tcpdump
    drop packets must not end the check, and the report says the captures may miss some."""
    asked: dict[str, object] = {}

    @contextlib.contextmanager
    def capture_in(*args: object, whole: bool = True, **kwargs: object) -> Iterator[LiveCapture]:
        asked["whole"] = whole
        captured = LiveCapture(helper=None)
        yield captured
        captured.lost, captured["pcap"] = "tcpdump dropped 3 packets: the capture is not whole", b""

    monkeypatch.setattr(kit, "capture_in", capture_in)
    bench = object.__new__(kit.Bench)
    bench.docker, bench.image_tag, bench.run_id = None, "latest", "test"
    report = Report("prog.py", "server", [])
    with bench.capture(None, report) as captured:
        pass
    assert asked == {"whole": False} and captured["pcap"] == b""
    assert report.notes == [
        "tcpdump dropped 3 packets: the capture is not whole: the failed cases' captures may miss"
        " packets"
    ]


@pytest.mark.parametrize(("left_s", "waited_s"), [(50.0, 30.0), (10.0, 15.0), (-100.0, 1.0)])
def test_a_probe_waits_no_longer_than_the_checks_time_left(left_s: float, waited_s: float) -> None:
    """The cases' probes share CHECK_WITHIN_S: each is stopped (timeout(1), SIGKILL) after at
    most its own timeout and what is left of the check (and 5 s of grace), and one second once
    nothing is; what it printed on stdout by then is read."""

    class Prober:
        command: list[str] = []

        def exec_run(self, command: list[str], demux: bool) -> tuple[int, tuple[bytes, bytes]]:
            assert demux
            Prober.command = command
            return 137, (b'{"id": "echo.small"}\nnoise\n', b'{"id": "on stderr"}\n')

    bench = object.__new__(kit.Bench)
    bench.deadline = time.monotonic() + left_s
    bench._prober = Prober()
    assert bench.probe("server", timeout_s=30) == [{"id": "echo.small"}]
    timeout, foreground, signal, limit, *rest = Prober.command
    assert (timeout, foreground, signal, rest) == (
        "timeout",
        "--foreground",
        "--signal=KILL",
        ["python3", "-m", "labprobe", "server"],
    )
    assert float(limit) == pytest.approx(waited_s, abs=0.5)
