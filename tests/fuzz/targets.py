"""What the fuzzers check, as plain functions of one input (bytes in; an exception is a finding).

Shared by the coverage-guided fuzzers (``run.py``, atheris) and by the suite, which replays every
seed and every input the fuzzers kept (``tests/unit/test_fuzz_corpus.py``). The only allowed
outcomes are replies and the codec's own errors.

The first bytes of an input steer the run (how the rest is split into reads, whether the peer
half-closes, the decoder's limit), so a fuzzer explores timing as well as content.
"""

from __future__ import annotations

from inmemory import APP_CODES, CODEC_CODES, MemoryConnection, error_code
from lab import appproto, framing
from labserver.app import AppProtocol

APP_SETTINGS = {"max_content_bytes": 4096, "frame_deadline_s": 1.0}


def _chunks(data: bytes) -> tuple[list[bytes], int, bool]:
    """Steering: byte 0 picks the read size (1..64, or all at once), byte 1 the decoder limit
    (its low bits) and whether the peer half-closes (its top bit)."""
    if len(data) < 2:
        return [data], 4096, False
    size = data[0] % 65 or len(data)
    limit = 16 << (data[1] & 0x0F)
    body = data[2:]
    return [body[i:i + size] for i in range(0, len(body), size)] or [b""], limit, \
        bool(data[1] & 0x80)


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
    conn = MemoryConnection(AppProtocol, **APP_SETTINGS)
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
    closing = [c for c in errors if c not in appproto.KEEPS_CONNECTION]
    assert len(closing) <= 1, f"more than one closing error: {closing}"
    if closing:
        assert conn.closing is not None and error_code(replies[-1]) == closing[0]
