"""The cases a server under test is graded on, each a function of where the server is, returning
a ``Verdict``: what was expected, what was observed, and for a failure a hint for a learner.

Every case has a stable id (``echo.half-close``), one sentence of what it checks (its
docstring's first line), and a bound on its time; every socket has a timeout. The kit on the
host runs the cases that need its hands (signals, restarts, memory, the socket table) itself:
``labcheck.kit``.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from lab import framing
from lab.greeting import parse_greeting

TIMEOUT_S = 3.0  # a connect, or one wait for bytes
FIFTY_WITHIN_S = 10  # 50 clients at once must each have their echo within this
FRAME_LIMIT = 16 << 20  # the largest reply content the kit reads from a server under test
PASS, FAIL, INFO, NOT_APPLICABLE = "pass", "fail", "info", "n/a"


@dataclass
class Verdict:
    id: str
    verdict: str
    expected: str
    observed: str
    hint: str = ""
    duration_s: float = 0.0
    started: float = field(default_factory=time.time)  # wall clock: the capture's window

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Where:
    """The server under test: for each protocol, the address it is reached at on the lab
    network (IPv4, or IPv6 where it takes only IPv6) and its port."""

    hosts: dict[str, str]
    ports: dict[str, int]

    def tcp(self, protocol: str) -> tuple[str, int]:
        return (self.hosts[protocol], self.ports[protocol])


class Failed(Exception):
    """A case's check did not hold: ``observed`` and ``hint`` say how."""

    def __init__(self, observed: str, hint: str = "") -> None:
        super().__init__(observed)
        self.observed, self.hint = observed, hint


class Informational(Exception):
    """What a server does is legal but worth saying (``observed``)."""

    def __init__(self, observed: str) -> None:
        super().__init__(observed)
        self.observed = observed


@dataclass(frozen=True)
class Case:
    id: str
    protocol: str  # echo, udp, greet, app
    check: Callable[[Where], str]  # returns what it observed; raises Failed / Informational
    expected: str
    hint: str  # for a learner, when it fails

    def run(self, where: Where) -> Verdict:
        started, clock = time.time(), time.monotonic()
        try:
            verdict, observed, hint = PASS, self.check(where), ""
        except Failed as exc:
            verdict, observed, hint = FAIL, exc.observed, exc.hint or self.hint
        except Informational as exc:
            verdict, observed, hint = INFO, exc.observed, ""
        except ConnectionRefusedError:
            observed = "connection refused: nothing listens there now (did the server end?)"
            verdict, hint = FAIL, self.hint
        except OSError as exc:
            verdict, observed, hint = FAIL, f"{type(exc).__name__}: {exc}", self.hint
        except Exception as exc:  # what the server sent could not be read (untrusted bytes)
            observed = f"its reply could not be read: {type(exc).__name__}: {str(exc)[:200]}"
            verdict, hint = FAIL, self.hint
        return Verdict(
            self.id,
            verdict,
            self.expected,
            observed,
            hint,
            round(time.monotonic() - clock, 3),
            started,
        )


# -- small tools ---------------------------------------------------------------------------
def connect(address: tuple[str, int], timeout_s: float = TIMEOUT_S) -> socket.socket:
    return socket.create_connection(address, timeout=timeout_s)


def read_all(
    sock: socket.socket, limit: int = 64 << 20, timeout_s: float = TIMEOUT_S, pause_s: float = 0.0
) -> tuple[bytes, str]:
    """Read until the peer closes ("closed"), resets ("reset"), goes quiet ("timeout"), or
    ``limit`` bytes ("limit"); with ``pause_s``, a slow reader that sleeps between reads."""
    sock.settimeout(timeout_s)
    data = bytearray()
    try:
        while len(data) < limit:
            chunk = sock.recv(min(65536, limit - len(data)))
            if not chunk:
                return bytes(data), "closed"
            data += chunk
            if pause_s:
                time.sleep(pause_s)
        return bytes(data), "limit"
    except TimeoutError:
        return bytes(data), "timeout"
    except ConnectionResetError:
        return bytes(data), "reset"


SLOW_READER_BUFFER = 64 << 10  # a slow reader's buffers, each way (Linux doubles them)
HOLD_BACK_S = 1.0  # a slow reader reads once the client could send nothing for this long


class Sending:
    """How a client's send is going, for its reader: when it last got bytes out, and whether
    it is done."""

    def __init__(self) -> None:
        self.moved, self.done = time.monotonic(), threading.Event()

    def stalled_or_done(self, quiet_s: float) -> None:
        """Return once nothing has gone out for ``quiet_s``, or everything has."""
        while not self.done.wait(0.05) and time.monotonic() - self.moved < quiet_s:
            pass


def slow_reader_socket(address: tuple[str, int]) -> socket.socket:
    """A connected socket with small buffers of its own, set before connecting (the window is
    agreed then). The kernel's autotuning could otherwise grow the receive buffer to hold a
    whole echo, so that a server never meets a full send buffer, and the send buffer to take
    the whole payload at once, so that "sent" would not mean "the server has it"."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, SLOW_READER_BUFFER)
        sock.settimeout(TIMEOUT_S)
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def echo(address: tuple[str, int], payload: bytes, pause_s: float = 0.0) -> tuple[bytes, str]:
    """Send ``payload`` (while reading, so that neither side's buffers can deadlock),
    half-close, and read to the end. With ``pause_s``, a slow reader: small buffers of its own
    (``slow_reader_socket``), nothing read until the client could send nothing for HOLD_BACK_S
    (or has sent it all), then ``pause_s`` between reads. So the server meets a full send
    buffer however fast it runs: a server starved of CPU on a busy machine once sent no faster
    than a reader that only paused read, and a server that drops what send() did not take
    passed."""
    slow = pause_s > 0
    with slow_reader_socket(address) if slow else connect(address) as sock:
        got: list[tuple[bytes, str]] = []
        sending = Sending()

        def read() -> None:
            if slow:
                sending.stalled_or_done(HOLD_BACK_S)
            got.append(read_all(sock, len(payload) + 1, pause_s=pause_s))

        reader = threading.Thread(target=read)
        reader.start()
        failed: OSError | None = None
        try:
            left = memoryview(payload)
            while left:
                left = left[sock.send(left[:65536]) :]
                sending.moved = time.monotonic()
            sending.done.set()
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the server reset or closed while the client still sent
            failed = exc
        finally:
            sending.done.set()
            reader.join(TIMEOUT_S * 4 + HOLD_BACK_S + len(payload) / 1e5)
        data, end = got[0] if got else (b"", "timeout")
        if failed is not None:
            end = f"{end} (the client's send failed: {type(failed).__name__})"
        return data, end


def said(data: bytes, limit: int = 60) -> str:
    """Bytes as a person reads them, cut short."""
    text = repr(data[:limit])
    return text + (f"... ({len(data)} bytes)" if len(data) > limit else "")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


# -- TCP echo ---------------------------------------------------------------------------------
def echo_small(where: Where) -> str:
    got, end = echo(where.tcp("echo"), b"Hello, world")
    if got != b"Hello, world":
        raise Failed(f"got {said(got)} back, then the connection was {end}")
    return "b'Hello, world' came back"


def echo_large(where: Where) -> str:
    payload = os.urandom(4 << 20)
    # A slow client (it holds back, then reads up to 64 KiB every 20 ms): the server's socket
    # buffer fills, and its send() says so (EAGAIN, or a short count) again and again.
    got, end = echo(where.tcp("echo"), payload, pause_s=0.02)
    if got != payload:
        raise Failed(
            f"{len(got)} of {len(payload)} bytes came back "
            f"(sha256 {digest(got)}, sent {digest(payload)}); then {end}"
        )
    return f"4 MiB came back intact (sha256 {digest(payload)}) to a slow reader"


def echo_bytewise(where: Where) -> str:
    message = b"one byte at a time"
    with connect(where.tcp("echo")) as sock:
        for i in range(len(message)):
            sock.sendall(message[i : i + 1])
            time.sleep(0.02)
        sock.shutdown(socket.SHUT_WR)
        got, end = read_all(sock)
    if got != message:
        raise Failed(f"got {said(got)}, then {end}")
    return f"{len(message)} bytes sent one by one, 20 ms apart, came back whole"


def echo_half_close(where: Where) -> str:
    payload = os.urandom(2 << 20)
    # A slow reader (as in echo.large): when the shutdown arrives, the server still has echo to
    # send.
    got, _ = echo(where.tcp("echo"), payload, pause_s=0.02)
    if len(got) < len(payload):
        raise Failed(
            f"the server closed after sending {len(got)} of {len(payload)} bytes "
            "(the client had shut down its side)"
        )
    return f"all {len(payload)} bytes came back after the client's shutdown(SHUT_WR)"


def echo_close_seen(where: Where) -> str:
    with connect(where.tcp("echo")) as sock:
        sock.sendall(b"bye")
        sock.shutdown(socket.SHUT_WR)
        got, end = read_all(sock, timeout_s=2.0)
    if end != "closed":
        raise Failed(
            f"2 s after the client shut down its side, the connection was still open "
            f"(got {said(got)})"
        )
    return "the server closed its side once it saw the client's (recv() returned b'')"


def _hold_and_serve(where: Where, holder_sends: bytes) -> float:
    """Client A connects (and sends ``holder_sends``) and stays; B must be echoed meanwhile.
    How long B took."""
    with connect(where.tcp("echo")) as first:
        if holder_sends:
            first.sendall(holder_sends)
            first.settimeout(TIMEOUT_S)
            first.recv(len(holder_sends))
        time.sleep(0.2)
        started = time.monotonic()
        with connect(where.tcp("echo")) as second:
            second.sendall(b"second")
            second.settimeout(2.0)
            try:
                got = second.recv(6)
            except TimeoutError:
                got = b""
        if got != b"second":
            raise Failed(
                "the second client got no echo within 2 s while the first stayed connected"
            )
        return time.monotonic() - started


def echo_two_clients(where: Where) -> str:
    return f"the second client was echoed in {_hold_and_serve(where, b'first') * 1000:.0f} ms"


def echo_idle_client(where: Where) -> str:
    waited = _hold_and_serve(where, b"")
    return f"with an idle client connected, another was echoed in {waited * 1000:.0f} ms"


def echo_fifty(where: Where) -> str:
    """50 connections, 1 KiB each, read all at once (a selector) until each has its echo or
    FIFTY_WITHIN_S has passed."""
    socks: list[socket.socket] = []
    got: dict[socket.socket, bytearray] = {}
    try:
        for _ in range(50):
            socks.append(connect(where.tcp("echo")))
        payloads = {sock: os.urandom(1024) for sock in socks}
        with selectors.DefaultSelector() as selector:
            for sock, payload in payloads.items():
                sock.sendall(payload)
                got[sock] = bytearray()
                selector.register(sock, selectors.EVENT_READ)
            deadline = time.monotonic() + FIFTY_WITHIN_S
            while selector.get_map() and (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    sock = key.fileobj  # type: ignore[assignment]
                    try:
                        chunk = sock.recv(65536)
                    except OSError:
                        chunk = b""
                    got[sock] += chunk
                    if not chunk or len(got[sock]) >= len(payloads[sock]):
                        selector.unregister(sock)
        done = sum(got[sock] == payload for sock, payload in payloads.items())
    finally:
        for sock in socks:
            sock.close()
    if done < 50:
        raise Failed(
            f"{done} of 50 clients connected at once got their echo within {FIFTY_WITHIN_S} s"
        )
    return "50 clients connected at once each got their own 1 KiB back"


def echo_reset_then_next(where: Where) -> str:
    sock = connect(where.tcp("echo"))
    try:
        sock.sendall(os.urandom(100_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass  # the server closed first (it may, mid-transfer): the next client is the test
    sock.close()  # a reset in the middle of the transfer
    time.sleep(0.3)
    got, end = echo(where.tcp("echo"), b"after the reset")
    if got != b"after the reset":
        raise Failed(f"after one client reset mid-transfer, the next got {said(got)} ({end})")
    return "after a client reset mid-transfer, the next client was served"


# -- UDP ----------------------------------------------------------------------------------
def _udp_echo(where: Where, payloads: list[bytes], sources: int = 1) -> list[bytes | None]:
    address = where.tcp("udp")
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    socks = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(sources)]
    try:
        for sock in socks:
            sock.settimeout(1.0)
        replies: list[bytes | None] = []
        for i, payload in enumerate(payloads):
            sock = socks[i % sources]
            sock.sendto(payload, address)
            try:
                replies.append(sock.recv(65535))
            except TimeoutError:
                replies.append(None)
        return replies
    finally:
        for sock in socks:
            sock.close()


def udp_echo(where: Where) -> str:
    (reply,) = _udp_echo(where, [b"a datagram"])
    if reply != b"a datagram":
        raise Failed(f"the echo was {reply!r}")
    return "a datagram came back as sent"


def udp_empty(where: Where) -> str:
    (reply,) = _udp_echo(where, [b""])
    if reply != b"":
        raise Failed("an empty datagram got no echo" if reply is None else f"got {reply!r}")
    return "an empty datagram came back empty"


def udp_largest(where: Where) -> str:
    largest = os.urandom(65507)  # the most an IPv4 UDP datagram carries
    (reply,) = _udp_echo(where, [largest])
    if reply != largest:
        got = "no echo" if reply is None else f"{len(reply)} bytes"
        raise Failed(f"a datagram of 65,507 bytes came back as {got}")
    return "a datagram of 65,507 bytes (the IPv4 maximum) came back whole"


def udp_sources(where: Where) -> str:
    payloads = [b"from source %d" % i for i in range(3)]
    replies = _udp_echo(where, payloads, sources=3)
    if replies != payloads:
        raise Failed(f"3 sources got {replies}")
    return "3 sources each got their own datagram back"


# -- greeting -------------------------------------------------------------------------------
def greet_line(where: Where) -> str:
    with connect(where.tcp("greet")) as sock:
        mine = sock.getsockname()
        got, _ = read_all(sock, limit=4096)
    line = got.decode("utf-8", "replace").strip()
    if not got.endswith(b"\n"):
        raise Failed(f"got {said(got)}: not a line (no newline at the end)")
    seen = parse_greeting(line)
    if mine[0] not in line or str(mine[1]) not in line:
        raise Failed(f"the line {line!r} does not name this client ({mine[0]} port {mine[1]})")
    return f"{line!r}" + ("" if seen is None else " (the lab's own greeting format)")


# -- the framed application protocol ---------------------------------------------------------
def frame(content: dict[str, Any] | bytes, content_type: str = "text/json") -> bytes:
    body = json.dumps(content).encode() if isinstance(content, dict) else content
    header = json.dumps(
        {
            "byteorder": "little",
            "content-type": content_type,
            "content-encoding": "utf-8" if content_type == "text/json" else "binary",
            "content-length": len(body),
        }
    ).encode()
    return struct.pack(">H", len(header)) + header + body


def read_frames(
    sock: socket.socket,
    count: int,
    timeout_s: float = TIMEOUT_S,
) -> tuple[list[dict[str, Any] | bytes], str]:
    """Up to ``count`` frames (JSON content as a dict), and how reading ended. The frames are
    cut by the lab's own decoder (``lab.framing``: linear time, fuzzed, bounded), so what a
    server under test sends is read with the same care as what the lab's server reads."""
    decoder = framing.MessageDecoder(max_content_bytes=FRAME_LIMIT)
    frames: list[dict[str, Any] | bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(frames) < count:
            for message in decoder.messages():
                frames.append(message.value if message.is_json else message.content)
                if len(frames) == count:
                    return frames, "ok"
            left = deadline - time.monotonic()
            if left <= 0:
                return frames, "timeout"
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return frames, "timeout"
            except ConnectionResetError:
                return frames, "reset"
            if not chunk:
                decoder.receive_eof()
                return frames, "closed"
            decoder.feed(chunk)
    except framing.FramingError as exc:
        raise Failed(f"a reply that is not a valid frame: {exc}") from None
    return frames, "ok"


def _ask(
    where: Where,
    request: bytes,
    replies: int = 1,
    pieces: int = 1,
) -> tuple[list[dict[str, Any] | bytes], str]:
    with connect(where.tcp("app")) as sock:
        step = max(1, len(request) // pieces)
        for i in range(0, len(request), step):
            sock.sendall(request[i : i + step])
            if pieces > 1:
                time.sleep(0.05)
        return read_frames(sock, replies)


def app_search(where: Where) -> str:
    got, end = _ask(where, frame({"action": "search", "value": "ring"}))
    if not got or not isinstance(got[0], dict) or "result" not in got[0]:
        raise Failed(f"no reply with a result ({end}): {got}")
    return f"search 'ring' -> {got[0]['result']!r}"


def app_actions(where: Where) -> str:
    answers = {}
    for action, value in (("echo", "x"), ("reverse", "abc"), ("whoami", None)):
        request = {"action": action} if value is None else {"action": action, "value": value}
        got, _ = _ask(where, frame(request))
        answers[action] = got[0].get("result") if got and isinstance(got[0], dict) else None
    unknown = [a for a, r in answers.items() if r is None or "invalid action" in str(r)]
    if unknown:
        raise Informational(
            f"the lab's own actions {unknown} are not answered: the tutorial's "
            "protocol has only search"
        )
    return f"echo, reverse and whoami answered: {answers}"


def app_split(where: Where) -> str:
    got, end = _ask(where, frame({"action": "search", "value": "tcp"}), pieces=9)
    if not got:
        raise Failed(f"a request sent in 9 pieces, 50 ms apart, got no reply ({end})")
    return "a request in 9 pieces (the first inside the length prefix) got its reply"


def app_binary(where: Where) -> str:
    got, end = _ask(where, frame(b"searchring", "binary/custom-client-binary-type"))
    if not got:
        raise Failed(f"a binary request got no reply ({end})")
    return f"a binary request got {said(got[0]) if isinstance(got[0], bytes) else got[0]}"


def app_pipelining(where: Where) -> str:
    request = frame({"action": "search", "value": "ring"})
    got, end = _ask(where, request * 2, replies=2)
    if len(got) == 1 and end in ("closed", "reset"):
        raise Informational(
            "two requests sent back to back: one reply, then the server "
            "closed (it answers one request per connection, as the tutorial's "
            "server does)"
        )
    if len(got) < 2:
        raise Failed(f"two requests back to back got {len(got)} replies ({end})")
    return "two requests sent back to back got two replies, in order"


def app_second_request(where: Where) -> str:
    with connect(where.tcp("app")) as sock:
        sock.sendall(frame({"action": "search", "value": "ring"}))
        first, end = read_frames(sock, 1)
        if end in ("closed", "reset") or not first:
            raise Informational(
                "the server closed after the first reply (one request per "
                "connection, as the tutorial's server does)"
            )
        try:
            sock.sendall(frame({"action": "search", "value": "tcp"}))
        except OSError:
            raise Informational("the server closed after the first reply") from None
        second, end = read_frames(sock, 1)
    if not second:
        raise Informational(f"a second request on the same connection got no reply ({end})")
    return "a second request on the same connection was answered"


def app_bad_frames(where: Where) -> str:
    observed = []
    for garbage in (b"\x00\x05[[[[[", b"\x00\x02{}", b"\xff\xff" + b"x" * 100):
        with connect(where.tcp("app")) as sock:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            got, end = read_all(sock, limit=65536)
        observed.append(f"{said(garbage, 12)}: {'a reply, then ' if got else ''}{end}")
        if end == "timeout":
            raise Failed(f"after {said(garbage, 12)} and a half-close, the connection stayed open")
    replies, end = _ask(where, frame({"action": "search", "value": "ring"}))
    if not replies:
        raise Failed(
            f"after bad frames, a good request got no reply ({end}): the server "
            "crashed or stopped serving",
            "a bad frame from one client must close "
            "that connection (or get an error reply), never stop the server: catch "
            "the error in the handler of that connection",
        )
    return "; ".join(observed) + "; and a good request is served after them"


CASES: tuple[Case, ...] = (
    Case(
        "echo.small",
        "echo",
        echo_small,
        "b'Hello, world' comes back as sent",
        "echo what recv() returned with sendall(), until recv() returns b''",
    ),
    Case(
        "echo.large",
        "echo",
        echo_large,
        "4 MiB comes back intact (sha256), to a client that reads slowly",
        "use sendall(), not send(): send() may take only part of what you give it (when "
        "the peer is slow, or the socket has a timeout); and loop on recv()",
    ),
    Case(
        "echo.bytewise",
        "echo",
        echo_bytewise,
        "a message sent one byte at a time, with pauses, comes back whole",
        "TCP is a byte stream: recv() returns whatever has arrived, perhaps one byte; loop "
        "until recv() returns b''",
    ),
    Case(
        "echo.half-close",
        "echo",
        echo_half_close,
        "the server finishes sending after the client shuts down its side",
        "recv() returning b'' means the client has finished sending, not that it has stopped "
        "reading: send what you still owe it, then close",
    ),
    Case(
        "echo.close-seen",
        "echo",
        echo_close_seen,
        "the server closes its side once the client has closed",
        "recv() returning b'' means the peer closed: close your side (a loop that ignores "
        "b'' spins forever)",
    ),
    Case(
        "echo.two-clients",
        "echo",
        echo_two_clients,
        "a second client is served while the first stays connected",
        "one client at a time blocks everyone else: serve clients concurrently (threads, or "
        "a selectors loop)",
    ),
    Case(
        "echo.fifty-clients",
        "echo",
        echo_fifty,
        "50 clients connected at once are each echoed within 10 s",
        "50 clients at once need 50 threads, or one selectors loop; with a thread per client, "
        "the container's pids limit is the ceiling",
    ),
    Case(
        "echo.idle-client",
        "echo",
        echo_idle_client,
        "an idle client does not keep others waiting",
        "a blocking recv() on a client that says nothing holds the whole server: serve "
        "clients concurrently",
    ),
    Case(
        "echo.reset-then-next",
        "echo",
        echo_reset_then_next,
        "after a client resets mid-transfer, the next client is served",
        "a reset (ConnectionResetError) ends that client's connection only: catch OSError "
        "around one client's work and go on with the next",
    ),
    Case(
        "udp.echo",
        "udp",
        udp_echo,
        "a datagram comes back as sent",
        "recvfrom() gives the datagram and its sender: sendto() it back",
    ),
    Case(
        "udp.empty",
        "udp",
        udp_empty,
        "an empty datagram comes back empty",
        "an empty datagram is a datagram: recvfrom() returns b'' for it, echo it too",
    ),
    Case(
        "udp.largest",
        "udp",
        udp_largest,
        "a datagram of 65,507 bytes comes back whole",
        "recvfrom(bufsize) cuts a larger datagram to bufsize: use 65,535",
    ),
    Case(
        "udp.sources",
        "udp",
        udp_sources,
        "three sources at once each get their own echo",
        "answer each datagram to the address recvfrom() gave with it",
    ),
    Case(
        "greet.line",
        "greet",
        greet_line,
        "one line (ending in a newline) naming the client's address and port, as the server "
        "sees them",
        "accept() returns the client's address: put it in the line, end it with \\r\\n",
    ),
    Case(
        "app.search",
        "app",
        app_search,
        "a framed search request gets a framed reply with a result",
        "a frame is a 2-byte big-endian length, a JSON header, then content-length "
        "bytes of content: read exactly that much",
    ),
    Case(
        "app.binary",
        "app",
        app_binary,
        "a binary request gets a framed reply",
        "a content-type other than text/json is raw bytes",
    ),
    Case(
        "app.split-anywhere",
        "app",
        app_split,
        "a request split anywhere (even inside the length prefix) gets its reply",
        "recv() may return part of a frame: buffer until the whole frame is there",
    ),
    Case(
        "app.pipelining",
        "app",
        app_pipelining,
        "two requests sent back to back get two replies, in order",
        "after one frame, more may already be in your buffer: keep parsing it",
    ),
    Case(
        "app.second-request",
        "app",
        app_second_request,
        "a second request on the same connection is answered",
        "",
    ),
    Case("app.actions", "app", app_actions, "the lab's actions echo, reverse and whoami", ""),
    Case(
        "app.bad-frames",
        "app",
        app_bad_frames,
        "bad frames get an error reply or a close, and the server goes on",
        "a malformed frame is one client's problem: answer an error or close that "
        "connection, and keep serving",
    ),
)


def by_id(case_id: str) -> Case:
    return next(case for case in CASES if case.id == case_id)


def wait_readable(sock: socket.socket, timeout_s: float) -> bool:
    return bool(select.select([sock], [], [], timeout_s)[0])
