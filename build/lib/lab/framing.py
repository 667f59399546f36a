"""The framed message protocol of Real Python's sockets tutorial, without any I/O.

A message on the wire::

    0        2                           2+N                                2+N+L
    +--------+---------------------------+----------------------------------+
    |   N    |  JSON header (N bytes)    |  content (L bytes)               |
    +--------+---------------------------+----------------------------------+
     2-byte    UTF-8 JSON object with exactly these required keys (others are kept):
     big-endian  "byteorder":        "little" | "big"   (the sender's; informational)
     unsigned    "content-type":     "text/json" or anything else (raw bytes)
                 "content-encoding": for text/json, the text encoding of the content
                 "content-length":   L, a non-negative integer

``text/json`` content is a JSON object in the named encoding; any other content type is raw bytes.

Everything here is bounded, because the bytes come from a peer: the header by its 2-byte length, the
content by ``max_content_bytes`` (checked from the header, before any content is buffered), a JSON
text by its nesting depth (``MAX_JSON_DEPTH``) and its number of values (``MAX_JSON_VALUES``, which
bounds the time a parse takes), an encoding name by an allow-list (``TEXT_ENCODINGS``; a peer's
string never reaches ``codecs.lookup``, whose cache would keep every name forever, and never picks a
slow or exotic codec), and any peer data quoted in an error message by ``clip``.

Use: ``encode_json(obj)`` / ``encode_binary(data)`` make bytes to send; a ``MessageDecoder`` is
fed whatever arrives and hands back complete ``Message`` objects -- several from one read, none
from half of one. It raises ``RemoteProtocolError`` (with a short ``code``) when the peer's bytes
break the format, ``TruncatedMessage`` when the stream ends inside a message, and encoding raises
``LocalProtocolError`` when we try to send something the format cannot carry.
"""

from __future__ import annotations

import codecs
import json
import re
import struct
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "text/json"
BINARY_ENCODING = "binary"
REQUIRED_KEYS = ("byteorder", "content-type", "content-encoding", "content-length")
MAX_HEADER_BYTES = 0xFFFF  # what the 2-byte length can say
# With these bounds the costliest request (long floats, parsed and echoed back) takes about 55 ms
# of CPU on a 2-core CI machine; at 1 MiB it took 110 ms, too long for the loop to stand still.
DEFAULT_MAX_CONTENT_BYTES = 512 << 10
MAX_JSON_DEPTH = 32  # nested arrays/objects; the top-level object is depth 1
MAX_JSON_VALUES = 50_000  # values in one JSON text, containers included: bounds the parse time
MAX_ENCODING_NAME = 32
# A header held while its content arrives is counted as this many bytes plus its size on the
# wire (its required keys' values), plus that size again when it has other keys (their bytes
# are kept). The most a decoder holds for one frame: LARGEST_FRAME_OVERHEAD + max_content_bytes.
SMALL_HEADER_COST = 1024
LARGEST_FRAME_OVERHEAD = 2 + 2 * MAX_HEADER_BYTES + SMALL_HEADER_COST
CLIP_CHARS = 64  # peer data quoted in an error message or a log line is cut to about this
_LENGTH = struct.Struct(">H")

# The text encodings a peer may name, by their spellings with case, "-" and "_" ignored, mapped to
# the codec we use. All are linear-time and raise only UnicodeError subclasses on bad input.
TEXT_ENCODINGS = {
    "utf8": "utf-8",
    "utf16": "utf-16",
    "utf16le": "utf-16-le",
    "utf16be": "utf-16-be",
    "utf32": "utf-32",
    "utf32le": "utf-32-le",
    "utf32be": "utf-32-be",
    "ascii": "ascii",
    "usascii": "ascii",
    "latin1": "latin-1",
    "iso88591": "latin-1",
}
# A JSON string, or (second branch) an unterminated one: everything from its quote to the end.
# Possessive quantifiers and the second branch make one left-to-right pass: a failed string is
# never rescanned from a later quote, which made the old pattern quadratic in escaped quotes.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"|"[\s\S]*')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def clip(value: Any, limit: int = CLIP_CHARS) -> str:
    """``repr(value)`` in at most about ``limit`` characters, saying how large it was: peer data
    quoted in replies and logs must not make them larger than the peer's bytes."""
    if isinstance(value, list | dict) and len(value) > 8:
        kind = "array" if isinstance(value, list) else "object"
        return f"<a JSON {kind} of {len(value)} items>"
    sized = isinstance(value, str | bytes | bytearray)
    text = repr(value[:limit] if sized else value)
    if len(text) > limit:
        text = text[:limit] + "..."
    if sized and len(value) > limit:
        text += f" ({len(value)} {'chars' if isinstance(value, str) else 'bytes'})"
    return text


def shown(value: Any, limit: int = CLIP_CHARS) -> str:
    """Peer data in a sentence: a short string as it is, anything else ``clip``-ped."""
    return value if isinstance(value, str) and len(value) <= limit else clip(value, limit)


def text_encoding(name: object) -> str | None:
    """The codec for a peer-named text encoding, or None if it is not on the allow-list."""
    if not isinstance(name, str) or len(name) > MAX_ENCODING_NAME:
        return None
    return TEXT_ENCODINGS.get(name.lower().replace("-", "").replace("_", ""))


def check_json_shape(text: str) -> str | None:
    """Why ``text`` is too deep or too large a JSON text to parse, or None if it is within the
    bounds. Cheap upper bounds first (str.count runs at memory speed); strings are cut out only
    when those bounds are exceeded, so that brackets and commas inside strings do not count."""
    opens = text.count("[") + text.count("{")
    if opens <= MAX_JSON_DEPTH and text.count(",") + opens < MAX_JSON_VALUES:
        return None
    skeleton = _without_strings(text)
    skeleton = "".join(skeleton.split())  # no whitespace, so empty containers read "[]" / "{}"
    opens = skeleton.count("[") + skeleton.count("{")
    empty = skeleton.count("[]") + skeleton.count("{}")
    values = 1 + skeleton.count(",") + opens - empty
    if values > MAX_JSON_VALUES:
        return f"more than {MAX_JSON_VALUES} values ({values})"
    if opens <= MAX_JSON_DEPTH:
        return None
    # Depth: peel the innermost pairs one level per pass (str.replace does not rescan what it
    # joins). Valid JSON empties in exactly its depth; at most ~2 * MAX_JSON_VALUES characters.
    brackets = _NOT_BRACKETS.sub("", skeleton).replace("{", "[").replace("}", "]")
    for _ in range(MAX_JSON_DEPTH):
        brackets = brackets.replace("[]", "")
        if not brackets:
            return None
    return f"nested deeper than {MAX_JSON_DEPTH} levels"


def _without_strings(text: str) -> str:
    """``text`` with its JSON strings (and an unterminated one's tail) cut out, in one pass:
    without backslashes a string is simply what lies between two quotes."""
    if '"' not in text:
        return text
    if "\\" not in text:
        return "".join(text.split('"')[0::2])
    return _JSON_STRING.sub("", text)


def parse_json(text: str, what: str) -> Any:
    """``json.loads`` within the bounds; raises ``RemoteProtocolError`` (code ``too-deep``,
    ``too-many-values`` or ``<what>-not-json``) for anything else."""
    if (problem := check_json_shape(text)) is not None:
        code = "too-many-values" if problem.startswith("more") else "too-deep"
        raise RemoteProtocolError(f"{what} JSON has {problem}", code)
    try:
        return json.loads(text)
    except RecursionError:  # cannot happen within MAX_JSON_DEPTH; kept as a second line
        raise RemoteProtocolError(f"{what} JSON is nested too deeply", "too-deep") from None
    except ValueError:  # includes integers over sys.get_int_max_str_digits()
        raise RemoteProtocolError(f"{what} is not JSON", f"{what}-not-json") from None


# The codes of RemoteProtocolError: what a peer's bytes can be told is wrong with them.
REMOTE_ERROR_CODES = frozenset(
    {
        "header-not-json",
        "header-not-utf8",
        "header-not-object",
        "missing-key",
        "bad-content-length",
        "bad-type",
        "content-too-large",
        "bad-encoding",
        "content-not-json",
        "content-not-object",
        "truncated",
        "too-deep",
        "too-many-values",
        "malformed-reply",
        "unsolicited-reply",  # a client's, of what a server sent
    }
)


class FramingError(Exception):
    """Base of the codec's errors. ``code`` is a short, stable name for the problem."""

    code = "framing-error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class LocalProtocolError(FramingError):
    """We tried to send something the format cannot carry."""


class RemoteProtocolError(FramingError):
    """The peer sent bytes that break the format."""


class TruncatedMessage(RemoteProtocolError):
    """The stream ended in the middle of a message."""

    code = "truncated"


@dataclass(frozen=True)
class Message:
    """One decoded message. ``value`` is the decoded JSON object for text/json, else None."""

    content_type: str
    content_encoding: str
    content: bytes
    byteorder: str = sys.byteorder
    value: Any = None
    header: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_json(self) -> bool:
        return self.content_type == JSON_TYPE


def encode_message(
    content: bytes,
    content_type: str,
    content_encoding: str,
    byteorder: str = sys.byteorder,
    extra_header: Mapping[str, Any] | None = None,
) -> bytes:
    """Frame ``content`` bytes with a header (plus any ``extra_header`` fields).
    Raises ``LocalProtocolError`` if it cannot."""
    if not isinstance(content, bytes | bytearray | memoryview):
        raise LocalProtocolError(
            f"content must be bytes, not {type(content).__name__}", "bad-content"
        )
    extra = dict(extra_header or {})
    if clash := sorted(set(extra) & set(REQUIRED_KEYS)):
        raise LocalProtocolError(f"extra header fields may not replace {clash}", "bad-header")
    header = {
        "byteorder": byteorder,
        "content-type": content_type,
        "content-encoding": content_encoding,
        "content-length": len(content),
        **extra,
    }
    header_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise LocalProtocolError(
            f"header of {len(header_bytes)} bytes exceeds {MAX_HEADER_BYTES}", "header-too-large"
        )
    return b"".join((_LENGTH.pack(len(header_bytes)), header_bytes, content))


def encode_json(
    obj: dict[str, Any],
    encoding: str = "utf-8",
    byteorder: str = sys.byteorder,
    extra_header: Mapping[str, Any] | None = None,
) -> bytes:
    """A text/json message carrying ``obj`` (a JSON object) in ``encoding`` (one of
    ``TEXT_ENCODINGS``). Characters the encoding cannot carry (or lone surrogates) are sent as
    JSON escapes, so any JSON-serialisable object can be sent in any allowed encoding."""
    if not isinstance(obj, dict):
        raise LocalProtocolError(
            f"text/json content must be an object, not {type(obj).__name__}", "bad-content"
        )
    codec = text_encoding(encoding)
    if codec is None:
        raise LocalProtocolError(f"unknown text encoding {clip(encoding)}", "bad-encoding")
    try:
        text = json.dumps(obj, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:  # not serialisable, or a cycle
        raise LocalProtocolError(
            f"cannot encode content as JSON: {clip(str(exc))}", "bad-content"
        ) from None
    # Only the characters the encoding cannot say become escapes (never the whole text: one lone
    # surrogate must not make every other character six bytes long).
    content = text.encode(codec, _JSON_ESCAPE)
    return encode_message(content, JSON_TYPE, encoding, byteorder, extra_header)


def _json_escape(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: what the encoding cannot carry, as JSON ``\\uXXXX`` escapes (a
    surrogate pair beyond the BMP). Such characters only occur inside JSON strings (everything
    else json.dumps writes is ASCII), where an escape means the same character."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    escaped = []
    for char in exc.object[exc.start : exc.end]:
        point = ord(char)
        if point > 0xFFFF:
            point -= 0x10000
            escaped.append(f"\\u{0xD800 + (point >> 10):04x}\\u{0xDC00 + (point & 0x3FF):04x}")
        else:
            escaped.append(f"\\u{point:04x}")
    return "".join(escaped), exc.end


_JSON_ESCAPE = "sockets-lab-json-escape"
codecs.register_error(_JSON_ESCAPE, _json_escape)


def encode_binary(
    data: bytes,
    content_type: str = "binary/custom-client-binary-type",
    byteorder: str = sys.byteorder,
    extra_header: Mapping[str, Any] | None = None,
) -> bytes:
    """A raw-bytes message (the tutorial's binary type by default)."""
    if content_type == JSON_TYPE:
        raise LocalProtocolError("binary content cannot be text/json", "bad-content")
    return encode_message(data, content_type, BINARY_ENCODING, byteorder, extra_header)


def _parse_header(raw: bytes | memoryview, max_content_bytes: int) -> dict[str, Any]:
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeError:
        raise RemoteProtocolError("header is not valid UTF-8", "header-not-utf8") from None
    header = parse_json(text, "header")
    if not isinstance(header, dict):
        raise RemoteProtocolError(
            f"header is a JSON {type(header).__name__}, not an object", "header-not-object"
        )
    missing = [key for key in REQUIRED_KEYS if key not in header]
    if missing:
        raise RemoteProtocolError(
            f"header lacks {', '.join(repr(k) for k in missing)}", "missing-key"
        )
    length = header["content-length"]
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise RemoteProtocolError(
            f"content-length {clip(length)} is not a non-negative integer", "bad-content-length"
        )
    for key in ("content-type", "content-encoding"):
        if not isinstance(header[key], str):
            raise RemoteProtocolError(f"{key} {clip(header[key])} is not a string", "bad-type")
    if header["byteorder"] not in ("little", "big"):
        raise RemoteProtocolError(
            f"byteorder {clip(header['byteorder'])} is not 'little' or 'big'", "bad-type"
        )
    if length > max_content_bytes:  # before a single content byte is buffered for it
        raise RemoteProtocolError(
            f"content-length {length} exceeds the limit of {max_content_bytes} bytes",
            "content-too-large",
        )
    return header


def _decode_json_content(content: bytes, encoding: str) -> dict[str, Any]:
    codec = text_encoding(encoding)
    if codec is None:
        raise RemoteProtocolError(
            f"unknown content-encoding {clip(encoding)} (allowed: "
            f"{', '.join(sorted(set(TEXT_ENCODINGS.values())))})",
            "bad-encoding",
        )
    try:
        text = content.decode(codec)
    except UnicodeError:
        raise RemoteProtocolError(f"content is not valid {codec}", "bad-encoding") from None
    value = parse_json(text, "content")
    if not isinstance(value, dict):
        raise RemoteProtocolError(
            f"text/json content is a JSON {type(value).__name__}, not an object",
            "content-not-object",
        )
    return value


class MessageDecoder:
    """Feed bytes in, take complete messages out.

    ``next_message()`` returns a ``Message`` or ``NEED_DATA``. After a ``RemoteProtocolError`` the
    stream cannot be re-synchronised: the decoder stays failed and the connection should close.
    The buffer is one ``bytearray`` read through an offset and compacted now and then, so a read
    holding many small messages costs no re-slicing per message.
    """

    NEED_DATA = object()

    def __init__(self, max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES) -> None:
        self.max_content_bytes = max_content_bytes
        self._buffer = bytearray()
        self._pos = 0  # start of the unread part of _buffer
        self._header: dict[str, Any] | None = None  # parsed header of the message in progress
        self._header_raw = b""  # its bytes, when it has keys beyond the required ones
        self._header_cost = 0  # what that header is counted as in ``held_bytes``
        self._failed: tuple[type[RemoteProtocolError], str, str] | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos and self._pos >= len(self._buffer) // 2:
            # A new buffer rather than ``del buf[:pos]``, which keeps the old allocation: what
            # a large frame took is given back once it has been handed out.
            self._buffer = self._buffer[self._pos :]
            self._pos = 0
        self._buffer += data

    def clear(self) -> None:
        """Drop everything buffered (the connection is closing)."""
        self._buffer = bytearray()
        self._pos = 0
        self._header = None
        self._header_raw = b""
        self._header_cost = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as part of a message."""
        return len(self._buffer) - self._pos

    @property
    def held_bytes(self) -> int:
        """What this decoder keeps in memory: its buffer (read and unread parts alike, until the
        next compaction) and the header of the message in progress."""
        return len(self._buffer) + self._header_cost

    def ready(self) -> bool:
        """Can ``next_message`` get further without more bytes (a whole header, or a whole
        message, is buffered)? Cheap: nothing is parsed."""
        available = len(self._buffer) - self._pos
        if self._header is not None:
            return bool(available >= self._header["content-length"])
        return available >= 2 and available >= 2 + _LENGTH.unpack_from(self._buffer, self._pos)[0]

    @property
    def in_progress(self) -> bool:
        """True when part of a message has arrived (so a deadline for the rest applies)."""
        return self.buffered > 0 or self._header is not None

    def next_message(self) -> Message | object:
        if self._failed is None:
            try:
                return self._next()
            except RemoteProtocolError as exc:
                self._fail(exc)
        raise self._failure()

    def messages(self) -> Iterator[Message]:
        """Every complete message buffered now (possibly none), one at a time: a caller
        handles each before a bad message after it raises."""
        while (message := self.next_message()) is not self.NEED_DATA:
            yield message  # type: ignore[misc]

    def receive_eof(self) -> None:
        """The peer closed its side: fine between messages, ``TruncatedMessage`` inside one."""
        if self._failed is None and self.in_progress:
            where = "content" if self._header is not None else "header"
            self._fail(
                TruncatedMessage(
                    f"stream ended inside a message ({where} incomplete, "
                    f"{self.buffered} bytes of it received)"
                )
            )
        if self._failed is not None:
            raise self._failure()

    def _fail(self, exc: RemoteProtocolError) -> None:
        """Remember why, without the exception itself: its traceback's frames would keep the
        buffer, the content and the decoded text alive for as long as the decoder lives. The
        buffer goes at once: a failed stream is never read again."""
        self._failed = (type(exc), str(exc), exc.code)
        self.clear()

    def _failure(self) -> RemoteProtocolError:
        """A fresh exception for the remembered failure (raised outside any ``except``, so it
        carries no context either)."""
        assert self._failed is not None
        kind, message, code = self._failed
        return kind(message, code)

    def _next(self) -> Message | object:
        buf, pos = self._buffer, self._pos
        if self._header is None:
            if len(buf) - pos < 2:
                return self._need_data()
            (header_len,) = _LENGTH.unpack_from(buf, pos)
            if header_len == 0:
                raise RemoteProtocolError("header length is zero", "header-not-json")
            if len(buf) - pos < 2 + header_len:
                return self._need_data()
            with memoryview(buf) as view:
                raw = view[pos + 2 : pos + 2 + header_len]
                header = _parse_header(raw, self.max_content_bytes)
                if len(header) > len(REQUIRED_KEYS):
                    # Other keys may be large objects (a parsed 64 KiB header can take 1.5 MB):
                    # keep their bytes while the content arrives, and parse them again then.
                    self._header_raw = bytes(raw)
                    header = {key: header[key] for key in REQUIRED_KEYS}
            self._header = header
            self._header_cost = SMALL_HEADER_COST + header_len + len(self._header_raw)
            pos = self._pos = pos + 2 + header_len
        header = self._header
        length = header["content-length"]
        if len(buf) - pos < length:
            return self._need_data()
        content = bytes(buf[pos : pos + length])
        self._pos = pos + length
        if self._header_raw:
            header = _parse_header(self._header_raw, self.max_content_bytes)
        self._header, self._header_raw, self._header_cost = None, b"", 0
        if self._pos == len(buf):  # all handed out: let go of the allocation
            self._buffer, self._pos = bytearray(), 0
        value = None
        if header["content-type"] == JSON_TYPE:
            value = _decode_json_content(content, header["content-encoding"])
        return Message(
            header["content-type"],
            header["content-encoding"],
            content,
            header["byteorder"],
            value,
            header,
        )

    def _need_data(self) -> object:
        """Waiting for the peer: keep only the unread part, so that what the decoder holds is
        what the rest of this message needs (the bytes already handed out are let go of once
        per message, a copy of at most one message)."""
        if self._pos:
            self._buffer = self._buffer[self._pos :]
            self._pos = 0
        return self.NEED_DATA
