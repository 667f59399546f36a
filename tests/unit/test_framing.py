"""The sans-I/O codec: every case whole, byte by byte, and with trailing bytes; properties."""

from __future__ import annotations

import json

import pytest
from framing_cases import INVALID, LIMIT, VALID, header, raw_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from lab import framing
from lab.framing import (
    LocalProtocolError,
    MessageDecoder,
    RemoteProtocolError,
    TruncatedMessage,
    encode_binary,
    encode_json,
    encode_message,
)
from labtutorial import framed

NEED_DATA = MessageDecoder.NEED_DATA


def feed_whole(data: bytes) -> list[framing.Message]:
    decoder = MessageDecoder(LIMIT)
    decoder.feed(data)
    found = list(decoder.messages())
    decoder.receive_eof()
    return found


def feed_bytewise(data: bytes) -> list[framing.Message]:
    decoder = MessageDecoder(LIMIT)
    found: list[framing.Message] = []
    for i in range(len(data)):
        decoder.feed(data[i : i + 1])
        found.extend(decoder.messages())
    decoder.receive_eof()
    return found


def feed_with_trailing(data: bytes) -> list[framing.Message]:
    """The message, then the first bytes of another one: one message out, the rest waits."""
    decoder = MessageDecoder(LIMIT)
    decoder.feed(data + encode_binary(b"next")[:5])
    found = list(decoder.messages())
    assert decoder.in_progress
    with pytest.raises(TruncatedMessage):
        decoder.receive_eof()
    return found


FEEDERS = [feed_whole, feed_bytewise, feed_with_trailing]


@pytest.mark.parametrize("feed", FEEDERS)
@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_message(name: str, feed) -> None:
    wire, value = VALID[name]
    (message,) = feed(wire)
    assert message.value == value
    assert message.is_json == (value is not None)
    length = message.header["content-length"]
    assert message.content == wire[len(wire) - length :]


@pytest.mark.parametrize("feed", FEEDERS)
@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_message(name: str, feed) -> None:
    wire, code = INVALID[name]
    with pytest.raises(RemoteProtocolError) as raised:
        feed(wire)
    assert raised.value.code == code
    assert not isinstance(raised.value, TruncatedMessage)


def test_several_messages_from_one_read_and_none_from_half() -> None:
    wires = [encode_json({"n": i}) for i in range(5)]
    decoder = MessageDecoder()
    stream = b"".join(wires)
    decoder.feed(stream[: len(stream) - 3])
    assert [m.value["n"] for m in list(decoder.messages())] == [0, 1, 2, 3]
    assert decoder.next_message() is NEED_DATA
    decoder.feed(stream[-3:])
    assert [m.value["n"] for m in list(decoder.messages())] == [4]
    assert not decoder.in_progress
    decoder.receive_eof()  # between messages: fine


def test_a_good_message_before_a_bad_one_is_handed_out_first() -> None:
    decoder = MessageDecoder()
    decoder.feed(encode_json({"n": 1}) + b"\x00\x05hello")
    messages = decoder.messages()
    assert next(messages).value == {"n": 1}  # the caller can answer it...
    with pytest.raises(RemoteProtocolError):  # ...before the bad one raises
        next(messages)


def test_content_limit_is_checked_before_the_content_arrives() -> None:
    decoder = MessageDecoder(max_content_bytes=100)
    decoder.feed(raw_frame(header(**{"content-type": "x", "content-length": 101})))
    with pytest.raises(RemoteProtocolError, match="exceeds the limit of 100") as raised:
        list(decoder.messages())
    assert raised.value.code == "content-too-large"
    assert decoder.buffered < 200  # nothing was allocated for the content


@pytest.mark.parametrize("cut", [1, 2, 5, -1])
def test_end_of_stream_inside_a_message_is_truncated(cut: int) -> None:
    wire = encode_json({"action": "echo", "value": "x"})
    decoder = MessageDecoder()
    decoder.feed(wire[:cut])
    assert list(decoder.messages()) == []
    with pytest.raises(TruncatedMessage) as raised:
        decoder.receive_eof()
    assert raised.value.code == "truncated"


def test_decoder_stays_failed_after_an_error() -> None:
    decoder = MessageDecoder()
    decoder.feed(b"\x00\x00")
    with pytest.raises(RemoteProtocolError):
        list(decoder.messages())
    decoder.feed(encode_json({"ok": True}))
    with pytest.raises(RemoteProtocolError):
        list(decoder.messages())


def test_buffer_is_a_bytearray_compacted_as_it_goes() -> None:
    decoder = MessageDecoder()
    for i in range(1000):
        decoder.feed(encode_json({"n": i}))
        assert next(decoder.messages()).value == {"n": i}
    assert isinstance(decoder._buffer, bytearray)
    assert len(decoder._buffer) < 200  # consumed bytes do not pile up


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: encode_json(["not", "an", "object"]), "bad-content"),  # type: ignore[arg-type]
        (lambda: encode_json({"x": object()}), "bad-content"),
        (lambda: encode_json({"x": 1}, "klingon"), "bad-encoding"),
        (lambda: encode_binary("text, not bytes"), "bad-content"),  # type: ignore[arg-type]
        (lambda: encode_binary(b"x", content_type="text/json"), "bad-content"),
        (lambda: encode_message(b"", "x" * 70000, "binary"), "header-too-large"),
        (lambda: encode_json({}, extra_header={"content-length": 5}), "bad-header"),
    ],
)
def test_local_errors_are_ours_not_the_peers(call, code: str) -> None:
    with pytest.raises(LocalProtocolError) as raised:
        call()
    assert raised.value.code == code
    assert not isinstance(raised.value, RemoteProtocolError)


def test_wire_identical_to_the_tutorials_framing() -> None:
    content = json.dumps({"action": "search", "value": "\U0001f436"}, ensure_ascii=False)
    tutorial = framed.make_message(content.encode(), "text/json", "utf-8")
    ours = encode_json({"action": "search", "value": "\U0001f436"})
    assert ours == tutorial


# -- properties ------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
extra_headers = st.dictionaries(
    st.text(min_size=1).filter(lambda k: k not in framing.REQUIRED_KEYS), json_values, max_size=3
)


@settings(max_examples=300, deadline=None)
@given(
    obj=st.dictionaries(st.text(), json_values, max_size=5),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]),
    extra=extra_headers,
    byteorder=st.sampled_from(["little", "big"]),
)
def test_json_round_trip(obj: dict, encoding: str, extra: dict, byteorder: str) -> None:
    decoder = MessageDecoder(1 << 20)
    decoder.feed(encode_json(obj, encoding, byteorder=byteorder, extra_header=extra))
    (message,) = list(decoder.messages())
    assert message.value == obj
    assert message.byteorder == byteorder
    assert {k: message.header[k] for k in extra} == extra


@settings(max_examples=300, deadline=None)
@given(
    content=st.binary(max_size=3000),
    content_type=st.text(min_size=1).filter(lambda t: t != framing.JSON_TYPE),
    splits=st.lists(st.integers(min_value=0, max_value=3100), max_size=6),
)
def test_binary_round_trip_across_any_split(
    content: bytes, content_type: str, splits: list[int]
) -> None:
    wire = encode_binary(content, content_type) * 2
    decoder = MessageDecoder(1 << 20)
    found: list[framing.Message] = []
    previous = 0
    for cut in [*sorted({min(s, len(wire)) for s in splits}), len(wire)]:
        decoder.feed(wire[previous:cut])
        previous = cut
        found.extend(decoder.messages())
    assert [(m.content, m.content_type) for m in found] == [(content, content_type)] * 2


@settings(max_examples=500, deadline=None)
@given(
    data=st.binary(max_size=400),
    splits=st.lists(st.integers(0, 400), max_size=5),
    eof=st.booleans(),
)
def test_arbitrary_bytes_raise_only_the_codecs_errors(
    data: bytes, splits: list[int], eof: bool
) -> None:
    decoder = MessageDecoder(256)
    previous = 0
    try:
        for cut in [*sorted({min(s, len(data)) for s in splits}), len(data)]:
            decoder.feed(data[previous:cut])
            previous = cut
            list(decoder.messages())
        if eof:
            decoder.receive_eof()
    except framing.FramingError:
        pass
