"""No parser of peer input costs more than linear time: every entry point, fed adversarial
families of input at n and at 16n bytes, takes at most about 16 times as long; the test fails at
50, well before the 256 of a quadratic cost.

The entry points are every place a peer's bytes are parsed, on both sides: the frame header
(length prefix and JSON header, through the decoder), the JSON shape check, JSON content in
every allowed encoding, the greeting line, and a client's reading of a reply. The families are
what each one's branches suggest: escaped quotes, unterminated strings, backslash runs,
nesting, long numbers, surrogates, many keys, separators inside strings, whitespace.

"As long" is measured against the entry point's costliest family at n (CPU per byte), not only
against the same family at n: a parser may take a cheaper road for small inputs (the JSON shape
check counts brackets first and cuts strings out only past its bounds), and both roads are
linear; what must not happen is a cost per byte that grows with the input.
"""

from __future__ import annotations

import functools
import gc
import re
import time
from collections.abc import Callable

import pytest
from framing_cases import content_frame, raw_frame
from lab import framing
from lab.appconn import ClientConnection, Request
from lab.greeting import parse_greeting

RATIO_BOUND = 50  # linear is 16; quadratic would be 256
MIN_SAMPLE_S = 0.004  # each measurement repeats the call until it has taken this long


def cpu_per_call(call: Callable[[], object]) -> float:
    """The CPU time of one ``call()``: repeated until MIN_SAMPLE_S, best of three, with the
    heap frozen (a collection that walks pytest's heap is not the parser's cost). Frozen, not
    collected first: a full collection of a pytest-xdist worker's heap, before each of the
    module's thousands of measurements, cost far more than they did (the module took 93 s of
    test time in ``make test``, 8 s without it)."""
    gc.freeze()
    try:
        best = float("inf")
        for _ in range(3):
            runs, started = 0, time.thread_time()
            while True:
                call()
                runs += 1
                spent = time.thread_time() - started
                if spent >= MIN_SAMPLE_S:
                    break
            best = min(best, spent / runs)
        return best
    finally:
        gc.unfreeze()


def cost_per_byte(parse: Callable[[bytes], object], data: bytes) -> float:
    def call() -> object:
        try:
            return parse(data)
        except (framing.FramingError, ValueError):
            return None

    return cpu_per_call(call) / len(data)


def growth(
    parse: Callable[[bytes], object],
    make: Callable[[int], bytes],
    n: int,
    worst_at_n: float = 0.0,
    tries: int = 3,
) -> float:
    """How much longer ``parse`` takes on ``make(16 * n)`` than on ``make(n)``, scaled to 16n
    bytes: 16 for a linear cost. With ``worst_at_n`` (the entry point's costliest family's cost
    per byte at n), measured against the costlier of the two. A busy machine only ever adds
    time, so this is the least of up to ``tries`` measurements, stopping at one within
    RATIO_BOUND: a CI run once measured a linear parser at x78 (x15 on an idle machine), and a
    quadratic one is above the bound every time."""
    small, large = make(n), make(16 * n)
    assert len(large) >= 12 * len(small), "the family does not grow with n"
    least = float("inf")
    for _ in range(tries):
        at_n = max(cost_per_byte(parse, small), worst_at_n)
        least = min(least, 16 * cost_per_byte(parse, large) / at_n)
        if least < RATIO_BOUND:
            break
    return least


# -- families: each makes an input of about n bytes -------------------------------------------
def _fit(unit: bytes, n: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    return head + unit * max(1, (n - len(head) - len(tail)) // len(unit)) + tail


JSON_FAMILIES: dict[str, Callable[[int], bytes]] = {
    "escaped quotes, unterminated": lambda n: _fit(b'\\"', n, b'{"v": "'),
    "escaped quotes in one string": lambda n: _fit(b'\\"', n, b'{"v": "', b'"}'),
    "strings of one escaped quote": lambda n: _fit(b'"\\"",', n, b'{"v": [', b'""]}'),
    "backslash runs": lambda n: _fit(b"\\\\", n, b'{"v": "', b'"}'),
    "quote then backslash": lambda n: _fit(b'"\\', n, b'{"v": '),
    "brackets in an unterminated string": lambda n: _fit(b"[{", n, b'{"v": "'),
    "nesting past the bound": lambda n: _fit(b"[", n, b'{"v": '),
    "nesting within the bound, many times": lambda n: _fit(b"[[[[]]]],", n, b'{"v": [', b"1]}"),
    "long integer": lambda n: _fit(b"9", n, b'{"v": ', b"}"),
    "long fraction": lambda n: _fit(b"1", n, b'{"v": 0.', b"}"),
    "long exponent": lambda n: _fit(b"1", n, b'{"v": 1e', b"}"),
    "many floats": lambda n: _fit(b"1.7976931348623157e308,", n, b'{"v": [', b"1]}"),
    "lone surrogates": lambda n: _fit(b"\\ud800", n, b'{"v": "', b'"}'),
    "surrogate pairs": lambda n: _fit(b"\\ud83d\\ude00", n, b'{"v": "', b'"}'),
    "many keys": lambda n: b"{" + b",".join(b'"k%d": 0' % i for i in range(n // 10)) + b"}",
    "one key many times": lambda n: _fit(b'"k": 0,', n, b"{", b'"k": 1}'),
    "commas in a string": lambda n: _fit(b",", n, b'{"v": "', b'"}'),
    "whitespace": lambda n: _fit(b" \t\n", n, b'{"v": [', b"1]}"),
    "non-ASCII": lambda n: _fit("\u00e9".encode(), n, b'{"v": "', b'"}'),
}


# -- entry points ---------------------------------------------------------------------------
def decode_frames(wire: bytes) -> list[framing.Message]:
    decoder = framing.MessageDecoder(1 << 22)
    decoder.feed(wire)
    return list(decoder.messages())


def as_header(text: bytes) -> bytes:
    """A frame whose header is ``text`` (a JSON object with the required keys first)."""
    required = (
        b'{"byteorder": "big", "content-type": "x", "content-encoding": "x", '
        b'"content-length": 0, "extra": '
    )
    return raw_frame(None, header_bytes=required + text + b"}")


def as_reply(text: bytes) -> bytes:
    """A server's reply carrying ``text`` as its result's value."""
    return content_frame(b'{"result": ' + text + b"}")


def read_reply(wire: bytes) -> list[object]:
    """What a client does with a server's bytes (``ClientConnection``): frames, then replies."""
    client = ClientConnection()
    client.send(Request("echo", 1))
    client.receive_data(wire)
    return [client.next_event()]


ENTRY_POINTS: dict[str, tuple[Callable[[bytes], object], Callable[[bytes], bytes], int]] = {
    # name: (parse, wrap a JSON family's text into that entry point's input, n)
    "JSON shape check": (
        lambda b: framing.check_json_shape(b.decode("utf-8", "replace")),
        lambda text: text,
        2048,
    ),
    "frame header": (decode_frames, as_header, 2048),  # 16n stays within 65,535 bytes
    "JSON content, utf-8": (decode_frames, content_frame, 16384),
    "JSON content, utf-16": (
        decode_frames,
        lambda text: content_frame(text.decode("utf-8").encode("utf-16"), "utf-16"),
        8192,
    ),
    "JSON content, utf-32": (
        decode_frames,
        lambda text: content_frame(text.decode("utf-8").encode("utf-32"), "utf-32"),
        4096,
    ),
    "JSON content, latin-1": (
        decode_frames,
        lambda text: content_frame(text.decode("utf-8").encode("latin-1", "replace"), "latin-1"),
        16384,
    ),
    "a client reading a reply": (read_reply, as_reply, 16384),
}


@functools.cache
def worst_at_n(entry: str) -> float:
    """The entry point's costliest family, in CPU per byte, at n."""
    parse, wrap, n = ENTRY_POINTS[entry]
    return max(cost_per_byte(parse, wrap(make(n))) for make in JSON_FAMILIES.values())


@pytest.mark.parametrize("family", sorted(JSON_FAMILIES))
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_json_parsing_is_linear(entry: str, family: str) -> None:
    parse, wrap, n = ENTRY_POINTS[entry]
    ratio = growth(parse, lambda size: wrap(JSON_FAMILIES[family](size)), n, worst_at_n(entry))
    assert ratio < RATIO_BOUND, f"{entry} on {family}: x{ratio:.1f} for x16 the input"


GREETING_FAMILIES: dict[str, Callable[[int], bytes]] = {
    "a long hostname": lambda n: _fit(b"h", n, b"Hello from ", b" at 1.2.3.4:5! You are x."),
    "many ' at '": lambda n: _fit(b" at ", n, b"Hello from h", b"! You are x."),
    "many '! You are '": lambda n: _fit(b"! You are ", n, b"Hello from h at s", b"."),
    "no end": lambda n: _fit(b"x! You are y", n, b"Hello from h at "),
    "whitespace": lambda n: _fit(b" ", n, b"Hello from", b"."),
}


@pytest.mark.parametrize("family", sorted(GREETING_FAMILIES))
def test_greeting_parsing_is_linear(family: str) -> None:
    ratio = growth(lambda b: parse_greeting(b.decode()), GREETING_FAMILIES[family], 4096)
    assert ratio < RATIO_BOUND, f"greeting on {family}: x{ratio:.1f}"


def test_the_frame_length_prefix_costs_nothing_per_byte_it_announces() -> None:
    """A length prefix (or content-length) promising much, then little: no work until bytes."""
    ratio = growth(
        decode_frames,
        lambda n: raw_frame(
            {
                "byteorder": "big",
                "content-type": "x",
                "content-encoding": "x",
                "content-length": 1 << 21,
            },
            b"x" * n,
        ),
        16384,
    )
    assert ratio < RATIO_BOUND


def test_this_test_catches_a_quadratic_parser() -> None:
    """The old string pattern (it rescanned from every escaped quote) fails the same check, so
    the bound above can fail."""
    old = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
    ratio = growth(
        lambda b: old.sub("", b.decode()),
        JSON_FAMILIES["escaped quotes, unterminated"],
        1024,
        tries=1,
    )
    assert ratio > RATIO_BOUND, f"x{ratio:.1f}: the harness cannot tell quadratic from linear"
