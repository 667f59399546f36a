"""What a hostile peer can send the framed protocol, through the code the server runs (no socket).

Each defect found by attacking the server has a case here that would fail against the old code:
deep nesting (RecursionError), codecs that raise plain UnicodeError, quadratic codecs, unbounded
codec-name caching, per-frame deadlines, and replies or logs larger than the request.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from framing_cases import content_frame, header, raw_frame
from inmemory import APP_CODES, CODEC_CODES, MemoryTransport, error_code
from lab import framing
from labserver.app import AppProtocol
from labserver.config import ServerConfig

# No request may hold the loop longer than this many reference tasks (CPU time; see
# _reference_task_s), about twice the worst case's 5. One reference task took 16-18 ms on a
# 2-core CI machine; counted in units measured alongside, the bound means the same on a faster,
# slower or busier machine, where milliseconds do not.
LOOP_TIME_BOUND_REFS = 10
CONTENT = ServerConfig().max_content_bytes


def app(**settings: Any) -> MemoryTransport:
    return MemoryTransport(AppProtocol, **settings)


def only_error(conn: MemoryTransport) -> str:
    (reply,) = conn.replies()
    assert conn.closing is not None
    code = error_code(reply)
    assert code is not None, reply
    return code


@pytest.mark.parametrize("depth", [1000, 2000, 30000])
def test_deeply_nested_header_is_an_error_reply_not_a_crash(depth: int) -> None:
    conn = app()
    text = b"[" * min(depth, framing.MAX_HEADER_BYTES)
    conn.receive(len(text).to_bytes(2, "big") + text)
    assert only_error(conn) == "too-deep"


@pytest.mark.parametrize("depth", [999, 1000, 5000, 20_000])
def test_deeply_nested_content_is_an_error_reply_not_a_crash(depth: int) -> None:
    conn = app()
    conn.receive(content_frame(b'{"a":' + b"[" * depth + b"]" * depth + b"}"))
    assert only_error(conn) == "too-deep"


@pytest.mark.parametrize("where", ["header", "content"])
def test_depth_bound_is_exact(where: str) -> None:
    """MAX_JSON_DEPTH levels (the top-level object is one) pass; one more does not."""

    def nested(levels: int) -> dict:
        value: object = []
        for _ in range(levels - 2):
            value = [value]
        return {"action": "echo", "value": value}

    for levels, fine in ((framing.MAX_JSON_DEPTH, True), (framing.MAX_JSON_DEPTH + 1, False)):
        conn = app()
        if where == "content":
            conn.receive(framing.encode_json(nested(levels)))
        else:
            conn.receive(
                framing.encode_json(
                    {"action": "echo", "value": 1}, extra_header={"x": nested(levels)["value"]}
                )
            )
        if fine:
            assert conn.closing is None and error_code(conn.replies()[0]) is None
        else:
            assert only_error(conn) == "too-deep"


def test_value_bound_is_exact_and_brackets_in_strings_do_not_count() -> None:
    limit = framing.MAX_JSON_VALUES
    # {"action": .., "value": [0 * n]}: the object, two members' values, and n elements.
    at_limit = {"action": "echo", "value": [0] * (limit - 3)}
    conn = app(max_content_bytes=1 << 21)
    conn.receive(framing.encode_json(at_limit))
    assert conn.replies()[0].value == {"result": at_limit["value"]}
    over = {"action": "echo", "value": [0] * (limit - 2)}
    conn = app(max_content_bytes=1 << 21)
    conn.receive(framing.encode_json(over))
    assert only_error(conn) == "too-many-values"
    tricky = {"action": "echo", "value": "[{," * 100_000}
    conn = app(max_content_bytes=1 << 21)
    conn.receive(framing.encode_json(tricky))
    assert conn.replies()[0].value == {"result": tricky["value"]}


@pytest.mark.parametrize(
    "encoding",
    [
        "undefined",
        "punycode",
        "idna",
        "rot13",
        "base64",
        "hex",
        "zlib",
        "uu",
        "raw_unicode_escape",
        "unicode_escape",
        "utf-7",
        "cp1252",
        "mbcs",
        "",
        " utf-8",
        "utf-8\x00",
        "x" * 65000,
    ],
)
def test_only_allowed_encodings_reach_a_codec(encoding: str) -> None:
    conn = app()
    conn.receive(content_frame(b'{"action": "echo", "value": ".."}', encoding))
    assert only_error(conn) == "bad-encoding"


@pytest.mark.parametrize(
    "encoding",
    [
        *sorted(framing.TEXT_ENCODINGS),
        "UTF-8",
        "utf_8",
        "UTF-16LE",
        "Latin-1",
        "ISO-8859-1",
        "US-ASCII",
    ],
)
def test_allowed_encodings_and_their_spellings_work_both_ways(encoding: str) -> None:
    conn = app()
    conn.receive(framing.encode_json({"action": "reverse", "value": "abc\u00e9"}, encoding))
    (reply,) = conn.replies()
    assert reply.content_encoding == encoding  # answered in the request's own encoding
    assert reply.value == {"result": "\u00e9cba"}


def test_a_result_the_encoding_cannot_carry_goes_as_json_escapes() -> None:
    conn = app()
    conn.receive(framing.encode_json({"action": "echo", "value": "\U0001f436 \ud800"}, "ascii"))
    (reply,) = conn.replies()
    assert reply.content_encoding == "ascii" and reply.content.isascii()
    assert reply.value == {"result": "\U0001f436 \ud800"}


def test_unique_encoding_names_do_not_grow_memory() -> None:
    """The old code passed every name to ``codecs.lookup``, which caches each one forever."""
    frames = [content_frame(b"{}", f"enc-{i:028d}") for i in range(2000)]
    logging.disable(logging.WARNING)  # pytest keeps every log record: not ours to count
    tracemalloc.start()
    try:
        for wire in frames[:100]:  # warm up whatever is lazily set up
            app().receive(wire)
        gc.collect()  # a connection and its protocol refer to each other
        before = tracemalloc.get_traced_memory()[0]
        for wire in frames[100:]:
            app().receive(wire)
        gc.collect()
        grew = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    assert grew < 64 << 10, f"{grew} bytes kept after 1,900 unique encoding names"


def _frozen_cpu_s(work: Callable[[], object]) -> float:
    """CPU time of ``work()``, with the process's own objects frozen first: a collection
    triggered by the work's allocations would otherwise walk pytest's whole heap (hundreds of
    tests' worth), which the server's process does not have."""
    gc.collect()
    gc.freeze()
    try:
        started = time.thread_time()
        work()
        return time.thread_time() - started
    finally:
        gc.unfreeze()


_REFERENCE = json.dumps(
    [1.7976931348623157e308, -12345678, 1.2e-30, '\u00e9\\"', [[[]]], {"k": None}] * 2000
)  # 160 KB of the kinds of values below


def _reference_task_s() -> float:
    """The unit the loop bound is counted in: a JSON round trip of a fixed 160 KB document,
    plain ``json``, none of the server's code."""
    return _frozen_cpu_s(lambda: json.dumps(json.loads(_REFERENCE)))


def _longest_turn_s(wire: bytes) -> float:
    """The longest loop turn (CPU time) the server's app layer takes for ``wire``."""
    conn = app()
    _frozen_cpu_s(lambda: conn.receive(wire))
    assert conn.replies()
    return max(conn.turn_cpu_s)


def _longest_turn_in_refs(wire: bytes, tries: int = 4) -> tuple[float, float]:
    """(longest turn in reference tasks, that turn in seconds): the least of ``tries``, each
    turn divided by the quicker of the reference tasks run just before and just after it, so
    that a machine that is slower, or busier for a moment, moves both alike."""
    best = (float("inf"), 0.0)
    for _ in range(tries):
        before = _reference_task_s()
        turn = _longest_turn_s(wire)
        unit = min(before, _reference_task_s())
        best = min(best, (turn / unit, turn))
    return best


def _numbers(token: str, count: int) -> bytes:
    """An echo request whose value is ``count`` copies of a JSON number, written tightly."""
    text = '{"action":"echo","value":[' + ",".join([token] * count) + "]}"
    return content_frame(text.encode())


WORST_CASES = {  # the most expensive requests within the limits we could think of
    "punycode 18 KB (once quadratic)": content_frame(
        json.dumps({"action": "echo", "value": "\u00e9a" * 9000}).encode(), "punycode"
    ),
    "short floats at the value bound": _numbers("1.2e-30", framing.MAX_JSON_VALUES - 3),
    "long floats at the size bound": _numbers("1.7976931348623157e308", CONTENT // 23 - 2),
    "integers at the value bound": _numbers("-12345678", framing.MAX_JSON_VALUES - 3),
    "strings at the value bound": framing.encode_json(
        {"action": "echo", "value": ['\u00e9\\"'] * (framing.MAX_JSON_VALUES - 3)}
    ),
    "one string of escapes at the size bound": framing.encode_json(
        {"action": "echo", "value": "\x01" * (CONTENT // 6 - 40)}
    ),
    "towers at the depth bound": framing.encode_json(
        {
            "action": "echo",
            "value": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
            * (framing.MAX_JSON_VALUES // 31),
        }
    ),
    "utf-32 content, utf-32 reply": framing.encode_json(
        {"action": "echo", "value": "x" * (CONTENT // 4 - 40)}, "utf-32"
    ),
    "commas in strings at the size bound": framing.encode_json(
        {"action": "echo", "value": "," * (CONTENT - 40)}
    ),
    "search for a large value": framing.encode_json(
        {"action": "search", "value": list(range(framing.MAX_JSON_VALUES - 3))}
    ),
    "a read full of pipelined whoami": framing.encode_json({"action": "whoami"}) * 4000,
    "a read full of tiny binary requests": framing.encode_message(b"", "x", "x") * 4000,
}


@pytest.fixture(scope="module")
def longest_turns() -> dict[str, list[float]]:
    """Each worst case's longest loop turn, [in reference tasks, in seconds], measured in a
    fresh Python process: the server runs in a small one, while this one holds the whole suite,
    whose heap makes allocation and garbage collection slower for reasons not the server's."""
    here = Path(__file__).resolve().parent
    path = os.pathsep.join(str(here.parents[1] / part) for part in ("tests", "tests/unit"))
    code = (
        "import json, test_hostile_app as t\n"
        "print(json.dumps({name: t._longest_turn_in_refs(wire)"
        " for name, wire in t.WORST_CASES.items()}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", sorted(WORST_CASES))
def test_no_request_holds_the_loop_long(name: str, longest_turns: dict[str, list[float]]) -> None:
    wire = WORST_CASES[name]
    assert len(wire) <= CONTENT + 4096 or name.startswith("a read")
    refs, spent = longest_turns[name]
    print(
        f"{name}: {len(wire)} bytes, longest turn {refs:.2f} reference tasks"
        f" ({spent * 1000:.1f} ms of CPU)"
    )
    assert refs < LOOP_TIME_BOUND_REFS


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("huge content-type", raw_frame(header(**{"content-type": ["x" * 60000]}))),
        ("huge content-length", raw_frame(header(**{"content-length": "9" * 60000}))),
        ("huge byteorder", raw_frame(header(byteorder="\u00e9" * 10000))),
        ("escapes in the action", framing.encode_json({"action": "\x00" * 100_000})),
        ("a huge action", framing.encode_json({"action": ["x"] * 50_000})),
        ("a huge unknown encoding", content_frame(b"{}", "\x00" * 10000)),
        (
            "a search for a huge value",
            framing.encode_json({"action": "search", "value": "x" * 10**6}),
        ),
    ],
)
def test_replies_and_logs_never_repeat_much_of_the_peers_data(
    name: str, wire: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    conn = app()
    with caplog.at_level(logging.DEBUG):
        conn.receive(wire)
    assert 0 < len(conn.sent) <= 1024, f"{name}: a {len(conn.sent)}-byte reply"
    assert all(len(record.getMessage()) <= 1024 for record in caplog.records)


def test_pipelined_frames_each_get_their_own_deadline() -> None:
    """A client pipelining correctly for longer than the deadline is never cut off."""
    conn = app(frame_deadline_s=2)
    wire = framing.encode_json({"action": "echo", "value": "x" * 100})
    for i in range(20):  # 20 frames, each completed 1.5 s after it began: 30 s in all
        conn.receive(wire + wire[:50])  # the end of one frame and the start of the next
        conn.advance(1.5)
        conn.receive(wire[50:])
        conn.advance(0.2)
        assert conn.closing is None, f"cut off at frame {i}"
    assert len(conn.replies()) == 40


def test_a_frame_started_but_never_finished_is_cut_at_the_deadline() -> None:
    conn = app(frame_deadline_s=2)
    conn.receive(framing.encode_json({"action": "whoami"})[:10])
    conn.advance(1.9)
    assert conn.closing is None
    conn.advance(0.2)
    assert only_error(conn) == "frame-deadline"


def test_the_deadline_stands_still_while_we_pause_reading() -> None:
    """Back-pressure: while the server does not read, the peer cannot finish its frame."""
    conn = app(frame_deadline_s=2)
    conn.receive(framing.encode_json({"action": "whoami"})[:10])
    conn.advance(1.0)
    conn.backpressure(True)
    for _ in range(10):
        conn.advance(1.0)
    conn.backpressure(False)
    conn.advance(0.9)
    assert conn.closing is None  # 1.9 s of time the peer could send in
    conn.advance(0.2)
    assert only_error(conn) == "frame-deadline"


def test_every_error_code_is_a_known_one() -> None:
    """The codes a client can meet are the documented ones (the README's table lists them)."""
    assert {"too-deep", "too-many-values", "memory-budget"} <= CODEC_CODES | APP_CODES


def test_a_half_close_is_honoured_when_the_time_slice_ends_at_the_reply() -> None:
    """The request and the peer's half-close come together; its answer uses up the turn's
    slice (a busy loop), so work stops right after the reply. The end of stream must still be
    seen next turn and the connection closed: it once stayed open (answered, never closed) until
    the client gave up, 10 s later in a test under attack."""
    conn = MemoryTransport(AppProtocol)
    conn.protocol.data_received(memoryview(framing.encode_json({"action": "echo", "value": "x"})))
    conn.protocol.eof_received()
    more = conn.protocol.work(time.perf_counter())  # the slice is over once one reply is out
    assert conn.sent and conn.closing is None  # answered, not yet closed
    assert more, "work must be asked for again: the end of stream is still to be read"
    conn.protocol.work(time.perf_counter() + 1)
    assert conn.closing == "peer closed"
