"""What the fuzzers check, as plain functions of one input (bytes in; an exception is a finding).

Shared by the coverage-guided fuzzers (``run.py``, atheris) and by the suite, which replays every
seed and every input the fuzzers kept (``tests/unit/test_fuzz_corpus.py``). The only allowed
outcomes are replies and the codec's own errors.

The first bytes of an input steer the run (how the rest is split into reads, whether the peer
half-closes, the decoder's limit), so a fuzzer explores timing as well as content.

``with_cost_oracle`` makes time a finding too: an input whose CPU time per byte passes
``COST_PER_BYTE_S`` (a linear parser stays far below it; a quadratic one passes it within a
few KiB) raises ``CostFinding``, which the fuzzer saves like a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from inmemory import APP_CODES, CODEC_CODES, MemoryTransport, error_code
from lab import appconn, framing
from lab.appconn import NEED_DATA, ClientConnection, Closed, Request
from labclient.app import Expected
from labclient.errors import ClientError
from labserver.app import AppProtocol

APP_SETTINGS: dict[str, Any] = {"max_content_bytes": 4096, "frame_deadline_s": 1.0}
# The cost oracle's bound: about 100 times what the costliest linear input takes per byte under
# the fuzzer's instrumentation, and a floor for small inputs (a collection, a cold cache).
COST_PER_BYTE_S = 20e-6
COST_FLOOR_S = 0.05
TIMINGS = 3  # calls that judge an input over the bound: the least of them counts


class CostFinding(Exception):
    """An input cost more CPU per byte than any linear parser spends."""


def _cpu_s(target: Callable[[bytes], None], data: bytes) -> float:
    started = time.thread_time()
    target(data)
    return time.thread_time() - started


def with_cost_oracle(target: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``target`` that raises CostFinding when an input costs more than the bound. An input
    over it is run TIMINGS times in all and judged by the least: a collection or the machine's
    own noise can land in one call, a super-linear parser costs as much every time."""

    def run(data: bytes) -> None:
        bound = max(COST_FLOOR_S, len(data) * COST_PER_BYTE_S)
        spent = _cpu_s(target, data)
        if spent > bound:
            spent = min([spent, *(_cpu_s(target, data) for _ in range(TIMINGS - 1))])
        if spent > bound:
            raise CostFinding(
                f"{len(data)} bytes took {spent * 1000:.0f} ms of CPU "
                f"({spent / max(1, len(data)) * 1e6:.1f} us a byte; the bound is "
                f"{COST_PER_BYTE_S * 1e6:g} us)"
            )

    run.__name__ = target.__name__
    return run


def _chunks(data: bytes) -> tuple[list[bytes], int, bool]:
    """Steering: byte 0 picks the read size (1..64, or all at once), byte 1 the decoder limit
    (its low bits) and whether the peer half-closes (its top bit)."""
    if len(data) < 2:
        return [data], 4096, False
    size = data[0] % 65 or len(data)
    limit = 16 << (data[1] & 0x0F)
    body = data[2:]
    return (
        [body[i : i + size] for i in range(0, len(body), size)] or [b""],
        limit,
        bool(data[1] & 0x80),
    )


def codec_one_input(data: bytes) -> None:
    """Feed the decoder in pieces: messages or ``FramingError``, and every message holds up."""
    chunks, limit, eof = _chunks(data)
    decoder = framing.MessageDecoder(limit)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
            for message in decoder.messages():
                _check_message(message, limit)
        if eof:
            decoder.receive_eof()
    except framing.FramingError as exc:
        assert isinstance(exc, framing.RemoteProtocolError), exc
        assert exc.code in CODEC_CODES, exc.code
        assert len(str(exc)) <= 1024, "an error message repeats too much of the input"


def _check_message(message: framing.Message, limit: int) -> None:
    assert len(message.content) <= limit
    assert message.byteorder in ("little", "big")
    if message.is_json:
        assert isinstance(message.value, dict)
        # What we decoded we can send back, in the same encoding (escapes where needed).
        again = framing.MessageDecoder(1 << 24)
        again.feed(framing.encode_json(message.value, message.content_encoding))
        assert next(again.messages()).value == message.value
    else:
        framing.encode_message(message.content, message.content_type, message.content_encoding)


def app_one_input(data: bytes) -> None:
    """Drive the server's AppProtocol: every byte it sends is a well-formed reply, every error
    carries a known code, and once it closes it says nothing more."""
    chunks, _, eof = _chunks(data)
    conn = MemoryTransport(AppProtocol, **APP_SETTINGS)
    for i, chunk in enumerate(chunks):
        conn.receive(chunk)
        if i % 7 == 6:  # now and then, time passes between reads (deadlines run)
            conn.advance(0.4)
    if eof:
        conn.receive_eof()
    conn.advance(2.0)
    replies = conn.replies()
    for reply in replies:
        code = error_code(reply)
        assert code is None or code in CODEC_CODES | APP_CODES, code
    errors = [error_code(r) for r in replies if error_code(r) is not None]
    closing = [c for c in errors if c not in appconn.KEEPS_CONNECTION]
    assert len(closing) <= 1, f"more than one closing error: {closing}"
    if closing:
        assert conn.closing is not None and error_code(replies[-1]) == closing[0]


CLIENT_EXPECTS = (
    Expected(Request("echo", "x #0"), "x #0"),
    Expected(Request(binary=b"abc")),
    Expected(Request("whoami")),
)


def client_one_input(data: bytes) -> None:
    """A server's bytes, as the client reads them (``ClientConnection``, then each reply checked
    against its request): replies, the codec's errors, or a ``ClientError`` -- nothing else, and
    never more replies than requests."""
    chunks, limit, eof = _chunks(data)
    client = ClientConnection(limit)
    for expected in CLIENT_EXPECTS:
        client.send(expected.request)
    got = 0
    try:
        for chunk in [*chunks, b""] if eof else chunks:
            client.receive_data(chunk)
            while (event := client.next_event()) is not NEED_DATA:
                if isinstance(event, Closed):
                    return
                try:
                    CLIENT_EXPECTS[got].check(event, got)  # type: ignore[arg-type]
                except ClientError as exc:
                    assert len(str(exc)) <= 1024, "a client error repeats too much of the reply"
                got += 1
                assert got <= len(CLIENT_EXPECTS)
    except framing.FramingError as exc:
        assert isinstance(exc, framing.RemoteProtocolError), exc
        assert exc.code in CODEC_CODES, exc.code
        assert len(str(exc)) <= 1024, "an error message repeats too much of the input"


TARGETS = {"codec": codec_one_input, "app": app_one_input, "client": client_one_input}
