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

Use: ``encode_json(obj)`` / ``encode_binary(data)`` make bytes to send; a ``MessageDecoder`` is
fed whatever arrives and hands back complete ``Message`` objects -- several from one read, none
from half of one. It raises ``RemoteProtocolError`` (with a short ``code``) when the peer's bytes
break the format, ``TruncatedMessage`` when the stream ends inside a message, and encoding raises
``LocalProtocolError`` when we try to send something the format cannot carry.
"""

from __future__ import annotations

import codecs
import json
import struct
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "text/json"
BINARY_ENCODING = "binary"
REQUIRED_KEYS = ("byteorder", "content-type", "content-encoding", "content-length")
MAX_HEADER_BYTES = 0xFFFF  # what the 2-byte length can say
DEFAULT_MAX_CONTENT_BYTES = 1 << 20
_LENGTH = struct.Struct(">H")


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
    header: dict = field(default_factory=dict, compare=False)

    @property
    def is_json(self) -> bool:
        return self.content_type == JSON_TYPE


def _check_encoding(name: str) -> None:
    try:
        codecs.lookup(name)
    except LookupError:
        raise LocalProtocolError(f"unknown text encoding {name!r}", "bad-encoding") from None


def encode_message(content: bytes, content_type: str, content_encoding: str,
                   byteorder: str = sys.byteorder,
                   extra_header: Mapping[str, Any] | None = None) -> bytes:
    """Frame ``content`` bytes with a header (plus any ``extra_header`` fields).
    Raises ``LocalProtocolError`` if it cannot."""
    if not isinstance(content, bytes | bytearray | memoryview):
        raise LocalProtocolError(f"content must be bytes, not {type(content).__name__}",
                                 "bad-content")
    extra = dict(extra_header or {})
    if clash := sorted(set(extra) & set(REQUIRED_KEYS)):
        raise LocalProtocolError(f"extra header fields may not replace {clash}", "bad-header")
    header = {"byteorder": byteorder, "content-type": content_type,
              "content-encoding": content_encoding, "content-length": len(content), **extra}
    header_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise LocalProtocolError(f"header of {len(header_bytes)} bytes exceeds "
                                 f"{MAX_HEADER_BYTES}", "header-too-large")
    return b"".join((_LENGTH.pack(len(header_bytes)), header_bytes, content))


def encode_json(obj: dict, encoding: str = "utf-8", byteorder: str = sys.byteorder,
                extra_header: Mapping[str, Any] | None = None) -> bytes:
    """A text/json message carrying ``obj`` (a JSON object) in ``encoding``."""
    if not isinstance(obj, dict):
        raise LocalProtocolError(f"text/json content must be an object, not "
                                 f"{type(obj).__name__}", "bad-content")
    _check_encoding(encoding)
    try:
        content = json.dumps(obj, ensure_ascii=False).encode(encoding)
    except (TypeError, ValueError) as exc:  # not serialisable, or not representable
        raise LocalProtocolError(f"cannot encode content as {encoding} JSON: {exc}",
                                 "bad-content") from None
    return encode_message(content, JSON_TYPE, encoding, byteorder, extra_header)


def encode_binary(data: bytes, content_type: str = "binary/custom-client-binary-type",
                  byteorder: str = sys.byteorder,
                  extra_header: Mapping[str, Any] | None = None) -> bytes:
    """A raw-bytes message (the tutorial's binary type by default)."""
    if content_type == JSON_TYPE:
        raise LocalProtocolError("binary content cannot be text/json", "bad-content")
    return encode_message(data, content_type, BINARY_ENCODING, byteorder, extra_header)


def _parse_header(raw: bytes | memoryview, max_content_bytes: int) -> dict:
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("header is not valid UTF-8", "header-not-utf8") from None
    try:
        header = json.loads(text)
    except ValueError:
        raise RemoteProtocolError("header is not JSON", "header-not-json") from None
    if not isinstance(header, dict):
        raise RemoteProtocolError(f"header is a JSON {type(header).__name__}, not an object",
                                  "header-not-object")
    missing = [key for key in REQUIRED_KEYS if key not in header]
    if missing:
        raise RemoteProtocolError(f"header lacks {', '.join(repr(k) for k in missing)}",
                                  "missing-key")
    length = header["content-length"]
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise RemoteProtocolError(f"content-length {length!r} is not a non-negative integer",
                                  "bad-content-length")
    for key in ("content-type", "content-encoding"):
        if not isinstance(header[key], str):
            raise RemoteProtocolError(f"{key} {header[key]!r} is not a string", "bad-type")
    if header["byteorder"] not in ("little", "big"):
        raise RemoteProtocolError(f"byteorder {header['byteorder']!r} is not 'little' or 'big'",
                                  "bad-type")
    if length > max_content_bytes:  # before a single content byte is buffered for it
        raise RemoteProtocolError(f"content-length {length} exceeds the limit of "
                                  f"{max_content_bytes} bytes", "content-too-large")
    return header


def _decode_json_content(content: bytes, encoding: str) -> dict:
    try:
        text = content.decode(encoding)
    except LookupError:
        raise RemoteProtocolError(f"unknown content-encoding {encoding!r}",
                                  "bad-encoding") from None
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"content is not valid {encoding}", "bad-encoding") from None
    try:
        value = json.loads(text)
    except ValueError:
        raise RemoteProtocolError("text/json content is not JSON", "content-not-json") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"text/json content is a JSON {type(value).__name__}, "
                                  "not an object", "content-not-object")
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
        self._header: dict | None = None  # parsed header of the message in progress
        self._failed: RemoteProtocolError | None = None

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos >= len(self._buffer) // 2:
            del self._buffer[:self._pos]
            self._pos = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as part of a message."""
        return len(self._buffer) - self._pos

    @property
    def in_progress(self) -> bool:
        """True when part of a message has arrived (so a deadline for the rest applies)."""
        return self.buffered > 0 or self._header is not None

    def next_message(self) -> Message | object:
        if self._failed is not None:
            raise self._failed
        try:
            return self._next()
        except RemoteProtocolError as exc:
            self._failed = exc
            raise

    def messages(self) -> Iterator[Message]:
        """Every complete message buffered now (possibly none), one at a time: a caller
        handles each before a bad message after it raises."""
        while (message := self.next_message()) is not self.NEED_DATA:
            yield message  # type: ignore[misc]

    def receive_eof(self) -> None:
        """The peer closed its side: fine between messages, ``TruncatedMessage`` inside one."""
        if self._failed is None and self.in_progress:
            where = "content" if self._header is not None else "header"
            self._failed = TruncatedMessage(f"stream ended inside a message ({where} incomplete, "
                                            f"{self.buffered} bytes of it received)")
        if self._failed is not None:
            raise self._failed

    def _next(self) -> Message | object:
        buf, pos = self._buffer, self._pos
        if self._header is None:
            if len(buf) - pos < 2:
                return self.NEED_DATA
            (header_len,) = _LENGTH.unpack_from(buf, pos)
            if header_len == 0:
                raise RemoteProtocolError("header length is zero", "header-not-json")
            if len(buf) - pos < 2 + header_len:
                return self.NEED_DATA
            with memoryview(buf) as view:
                self._header = _parse_header(view[pos + 2:pos + 2 + header_len],
                                             self.max_content_bytes)
            pos = self._pos = pos + 2 + header_len
        header = self._header
        length = header["content-length"]
        if len(buf) - pos < length:
            return self.NEED_DATA
        content = bytes(buf[pos:pos + length])
        self._pos = pos + length
        self._header = None
        value = None
        if header["content-type"] == JSON_TYPE:
            value = _decode_json_content(content, header["content-encoding"])
        return Message(header["content-type"], header["content-encoding"], content,
                       header["byteorder"], value, header)
