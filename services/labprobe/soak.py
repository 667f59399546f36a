"""The soak's generator: many operations of every kind against a lab server, each written to a
history as it starts and as it ends, with what the client saw (``python3 -m labprobe soak``).
The checker (``labsoak.checker``, on the host) reads the history afterwards and judges every
operation from that evidence, not from the client's word.

    python3 -m labprobe soak HOST SECONDS SEED WORKER [--trusting]

Operations (each a thread, looping until SECONDS have passed):

  echo        a connection each: 1 B to 64 KiB of random bytes, half-close, the echo to EOF
  echo-long   one connection for ten rounds of 1 to 8 KiB each (an operation a round)
  udp         one socket: a datagram carrying the worker, a sequence number and random bytes;
              its echo within 1 s (others arriving meanwhile are recorded, not taken)
  app         a connection: one request, or two to five pipelined (an operation a request),
              of every action, each with a reply known in advance (unique values)
  greet       a connection: the line must name this client's own address and port

History lines (JSON, stdout): ``{"s": OP, "kind": K, "t": START}`` when an operation starts;
``{"e": OP, "t": END, "outcome": "ok"|"failed", "error": ..., ...evidence}`` when it ends. The
evidence is digests (sha256, 16 hex digits) of what was sent and what came back, so that the
checker can tell intact from corrupt, and whose bytes came back when they were not ours.

``--trusting`` makes a client that reports success without checking (for the checker's own
tests: its history must still show the corruption).
"""

from __future__ import annotations

import hashlib
import json
import random
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from lab import framing, registry
from lab.appconn import NEED_DATA, ClientConnection, Closed, ErrorReply, Reply, Request
from lab.appproto import BINARY_REPLY_PREFIX, SEARCH_TABLE

CONNECT_S = 2.0  # a connect
OP_S = 5.0  # one operation, at most, end to end
UDP_WAIT_S = 1.0
PAUSE_S = 0.02  # between a thread's operations
KINDS = ("echo", "echo-long", "udp", "app", "greet")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class Failed(Exception):
    """An operation ended with a clear error (the client says what)."""


@dataclass
class Op:
    id: str
    kind: str
    evidence: dict[str, Any] = field(default_factory=dict)
    outcome: str = "failed"
    error: str = ""


class History:
    """The history, one JSON line an event, written as it happens (a lock keeps lines whole)."""

    def __init__(self, out: TextIO, worker: str) -> None:
        self.out, self.worker = out, worker
        self.lock = threading.Lock()
        self.count = 0

    def write(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, separators=(",", ":"))
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()

    def next_id(self, prefix: str) -> str:
        with self.lock:
            self.count += 1
            return f"{self.worker}.{prefix}{self.count}"

    @contextmanager
    def op(self, kind: str, **evidence: Any) -> Iterator[Op]:
        op = Op(self.next_id(kind[0]), kind, dict(evidence))
        self.write({"s": op.id, "kind": kind, "t": round(time.time(), 4)})
        try:
            yield op
        except (OSError, Failed, framing.FramingError, ValueError) as exc:
            op.outcome, op.error = "failed", f"{type(exc).__name__}: {exc}"[:200]
        self.write(
            {
                "e": op.id,
                "t": round(time.time(), 4),
                "outcome": op.outcome,
                **({"error": op.error} if op.error else {}),
                **op.evidence,
            }
        )


@dataclass
class Generator:
    host: str
    seconds: float
    seed: str
    history: History
    trusting: bool = False
    ports: dict[str, int] = field(
        default_factory=lambda: {
            "echo": registry.default_port("tcp-echo"),
            "udp": registry.default_port("udp-echo"),
            "app": registry.default_port("app"),
            "greet": registry.default_port("greeting"),
        }
    )

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def rng(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}/{self.history.worker}/{name}")

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def accept(self, op: Op, intact: bool, what: str) -> None:
        """The client's verdict: ok only if what came back is what was due (the trusting
        client's: ok whatever came back)."""
        if intact or self.trusting:
            op.outcome = "ok"
        else:
            raise Failed(what)

    def connect(self, port: int, rng: random.Random) -> socket.socket:
        family = rng.choice((socket.AF_INET, socket.AF_INET6))
        try:
            infos = socket.getaddrinfo(self.host, port, family, socket.SOCK_STREAM)
        except socket.gaierror:
            infos = socket.getaddrinfo(self.host, port, 0, socket.SOCK_STREAM)
        af, kind, proto, _, address = infos[0]
        sock = socket.socket(af, kind, proto)
        sock.settimeout(CONNECT_S)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(OP_S)
        return sock

    # -- the operations ------------------------------------------------------------------
    def echo(self) -> None:
        rng = self.rng("echo")
        while self.running():
            payload = rng.randbytes(rng.choice((1, 100, 1000, 16384, 65536)))
            with (
                self.history.op("echo", sent=digest(payload), sent_len=len(payload)) as op,
                self.connect(self.ports["echo"], rng) as sock,
            ):
                op.evidence["local"] = _local(sock)
                got = _exchange(sock, payload)
                op.evidence.update(_seen(payload, got))
                self.accept(op, got == payload, f"{len(got)} of {len(payload)} bytes back")
            time.sleep(PAUSE_S)

    def echo_long(self) -> None:
        rng = self.rng("echo-long")
        while self.running():
            conn = self.history.next_id("conn")
            try:
                sock = self.connect(self.ports["echo"], rng)
            except OSError as exc:
                with self.history.op("echo-long", conn=conn):
                    raise Failed(f"connect: {exc}") from None
                time.sleep(0.2)
                continue
            with sock:
                for _ in range(10):
                    if not self.running():
                        break
                    payload = rng.randbytes(rng.randint(1, 8192))
                    with self.history.op(
                        "echo-long", conn=conn, sent=digest(payload), sent_len=len(payload)
                    ) as op:
                        sock.sendall(payload)
                        got = _read_exactly(sock, len(payload))
                        op.evidence.update(_seen(payload, got))
                        self.accept(op, got == payload, f"{len(got)} of {len(payload)} bytes")
                    if op.outcome != "ok":
                        break  # a broken connection: the next round on a new one
                    time.sleep(PAUSE_S)
                else:
                    sock.shutdown(socket.SHUT_WR)
            time.sleep(PAUSE_S)

    def udp(self) -> None:
        rng = self.rng("udp")
        infos = socket.getaddrinfo(self.host, self.ports["udp"], socket.AF_INET, socket.SOCK_DGRAM)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        conn = self.history.next_id("sock")
        seq = 0
        with sock:
            while self.running():
                seq += 1
                payload = f"{self.history.worker} {seq} ".encode() + rng.randbytes(
                    rng.randint(16, 1024)
                )
                with self.history.op("udp", conn=conn, seq=seq, sent=digest(payload)) as op:
                    try:
                        address = socket.getaddrinfo(
                            self.host, self.ports["udp"], socket.AF_INET, socket.SOCK_DGRAM
                        )[0][4]
                    except socket.gaierror:
                        address = infos[0][4]
                    sock.sendto(payload, address)
                    stale: list[str] = []
                    op.evidence["stale"] = stale
                    until = time.monotonic() + UDP_WAIT_S
                    while True:
                        left = until - time.monotonic()
                        if left <= 0:
                            raise Failed(f"no echo within {UDP_WAIT_S} s")
                        sock.settimeout(left)
                        try:
                            reply = sock.recv(65535)
                        except TimeoutError:
                            continue
                        if reply == payload or self.trusting:
                            op.evidence["got"] = digest(reply)
                            self.accept(op, reply == payload, "not our datagram")
                            break
                        stale.append(digest(reply))  # another's echo (late, or twice)
                time.sleep(PAUSE_S)

    def app(self) -> None:
        rng = self.rng("app")
        while self.running():
            count = 1 if rng.random() < 0.5 else rng.randint(2, 5)
            try:
                sock = self.connect(self.ports["app"], rng)
            except OSError as exc:
                with self.history.op("app"):
                    raise Failed(f"connect: {exc}") from None
                time.sleep(0.2)
                continue
            conn = self.history.next_id("conn")
            with sock:
                local = _local(sock)
                requests = [self._request(rng, local) for _ in range(count)]
                client = ClientConnection()
                wire = b"".join(client.send(request) for request, _ in requests)
                ops = [
                    self.history.op("app", conn=conn, request=what, expect=digest(due))
                    for (_, due), what in zip(
                        requests, (r[0].action or "binary" for r in requests), strict=True
                    )
                ]
                self._answers(sock, client, wire, requests, ops)
            time.sleep(PAUSE_S)

    def _request(self, rng: random.Random, local: tuple[str, int]) -> tuple[Request, bytes]:
        """A request and the bytes of its due result (JSON, or the binary reply)."""
        unique = f"{self.history.worker}-{rng.getrandbits(48):x}"
        action = rng.choice(("echo", "reverse", "search", "whoami", "binary"))
        if action == "binary":
            content = unique.encode() + rng.randbytes(rng.randint(0, 64))
            return Request(binary=content), BINARY_REPLY_PREFIX + content[:10]
        if action == "search":
            key = rng.choice(sorted(SEARCH_TABLE))
            return Request("search", key), _json(SEARCH_TABLE[key])
        if action == "whoami":
            return Request("whoami"), _json({"client_address": local[0], "client_port": local[1]})
        value = unique if action == "echo" else unique + "-reversed"
        return Request(action, value), _json(value if action == "echo" else value[::-1])

    def _answers(
        self,
        sock: socket.socket,
        client: ClientConnection,
        wire: bytes,
        requests: list[tuple[Request, bytes]],
        ops: list[Any],
    ) -> None:
        """Send every request at once, then take the replies in order: each request is an
        operation that ends when its reply has come (or the connection failed)."""
        entered = [op.__enter__() for op in ops]
        error: BaseException | None = None
        try:
            sock.sendall(wire)
        except OSError as exc:
            error = exc
        for index, (request, due) in enumerate(requests):
            op = entered[index]
            try:
                if error is not None:
                    raise error
                event = _next_reply(sock, client)
                got = _due_bytes(event, request)
                op.evidence["got"] = digest(got)
                self.accept(op, got == due, f"the reply was not the one due: {got[:80]!r}")
            except (OSError, Failed, framing.FramingError, ValueError) as exc:
                error = error or exc
                ops[index].__exit__(type(exc), exc, exc.__traceback__)
                continue
            ops[index].__exit__(None, None, None)

    def greet(self) -> None:
        rng = self.rng("greet")
        while self.running():
            with (
                self.history.op("greet") as op,
                self.connect(self.ports["greet"], rng) as sock,
            ):
                local = _local(sock)
                line = _read_to_eof(sock, 4096)
                text = line.decode("utf-8", "replace").strip()
                op.evidence.update(local=list(local), line=text[:200])
                names_us = local[0] in text and str(local[1]) in text
                self.accept(op, names_us, f"the line does not name us: {text[:80]!r}")
            time.sleep(PAUSE_S * 5)

    def run(self, kinds: tuple[str, ...] = KINDS) -> None:
        targets = {
            "echo": self.echo,
            "echo-long": self.echo_long,
            "udp": self.udp,
            "app": self.app,
            "greet": self.greet,
        }
        threads = [threading.Thread(target=targets[name], name=name, daemon=True) for name in kinds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.seconds + OP_S * 3)
        self.history.write({"done": self.history.worker, "t": round(time.time(), 4)})


# -- small tools -------------------------------------------------------------------------------
def _local(sock: socket.socket) -> tuple[str, int]:
    address = sock.getsockname()
    host = address[0]
    if host.startswith("::ffff:"):
        host = host[7:]
    return host, int(address[1])


HEAD = 64  # bytes: what names a payload when only part of it came back


def _seen(sent: bytes, got: bytes) -> dict[str, Any]:
    """What came back, as evidence: its digest and length, the digest of as much of what was
    sent (so a partial echo can be told from a wrong one), and the digests of the first HEAD
    bytes of both (so bytes meant for another operation can be named even when cut short)."""
    return {
        "got": digest(got),
        "got_len": len(got),
        "sent_prefix": digest(sent[: len(got)]),
        "head": digest(sent[:HEAD]),
        "got_head": digest(got[:HEAD]),
    }


def _exchange(sock: socket.socket, payload: bytes) -> bytes:
    """Send (while reading, so neither side's buffers can fill), half-close, read to EOF."""
    got = bytearray()
    sock.setblocking(False)
    deadline = time.monotonic() + OP_S
    view = memoryview(payload)
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        shut = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"timed out with {len(got)} of {len(payload)} bytes back")
            for _, mask in selector.select(left):
                if mask & selectors.EVENT_WRITE and view:
                    view = view[sock.send(view[:65536]) :]
                if mask & selectors.EVENT_READ:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return bytes(got)
                    got += chunk
                    if len(got) > len(payload):
                        return bytes(got)  # more than we sent: wrong, and perhaps endless
            if not view and not shut:
                sock.shutdown(socket.SHUT_WR)
                shut = True
                selector.modify(sock, selectors.EVENT_READ)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = sock.recv(size - len(got))
        if not chunk:
            raise Failed(f"the server closed after {len(got)} of {size} bytes")
        got += chunk
    return bytes(got)


def _read_to_eof(sock: socket.socket, limit: int) -> bytes:
    got = bytearray()
    while len(got) < limit:
        chunk = sock.recv(limit - len(got))
        if not chunk:
            break
        got += chunk
    return bytes(got)


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False).encode()


def _next_reply(sock: socket.socket, client: ClientConnection) -> Reply | ErrorReply:
    while True:
        event = client.next_event()
        if event is NEED_DATA:
            client.receive_data(sock.recv(65536))  # b"": the end of the stream
            continue
        if isinstance(event, Closed):
            raise Failed("the server closed before the reply")
        assert isinstance(event, Reply | ErrorReply)
        return event


def _due_bytes(event: Reply | ErrorReply, request: Request) -> bytes:
    """The reply, reduced to what was due: the binary content, or the JSON result (for
    whoami, only the client's own address and port, which are what we can know)."""
    if isinstance(event, ErrorReply):
        raise Failed(f"an error reply: {event.code}: {event.message}")
    if request.binary is not None:
        return event.binary or b""
    result = event.result
    if request.action == "whoami" and isinstance(result, dict):
        result = {k: result.get(k) for k in ("client_address", "client_port")}
        if isinstance(result["client_address"], str) and result["client_address"].startswith(
            "::ffff:"
        ):
            result["client_address"] = result["client_address"][7:]
    return _json(result)


def main(argv: list[str]) -> int:
    """``python3 -m labprobe soak HOST SECONDS SEED WORKER [--trusting]``"""
    trusting = "--trusting" in argv
    host, seconds, seed, worker = [a for a in argv if a != "--trusting"][:4]
    Generator(host, float(seconds), seed, History(sys.stdout, worker), trusting).run()
    return 0
