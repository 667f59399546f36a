"""Framed-protocol inputs shared by the unit and integration tests: good messages and bad ones,
each bad one with the error code the server must answer.
"""

from __future__ import annotations

import json
import struct

from lab.framing import encode_binary, encode_json
from labtutorial import framed

LIMIT = 4096


def raw_frame(header: object, content: bytes = b"", header_bytes: bytes | None = None) -> bytes:
    """Any header at all, framed as the wire format does (for building bad inputs)."""
    if header_bytes is None:
        header_bytes = json.dumps(header).encode()
    return struct.pack(">H", len(header_bytes)) + header_bytes + content


def content_frame(content: bytes, encoding: str = "utf-8") -> bytes:
    """``content`` framed as text/json in ``encoding``, whatever the bytes are."""
    return raw_frame(
        header(**{"content-length": len(content), "content-encoding": encoding}), content
    )


def header(**overrides: object) -> dict:
    base = {
        "byteorder": "big",
        "content-type": "text/json",
        "content-encoding": "utf-8",
        "content-length": 2,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


VALID = {
    "json-search": (
        encode_json({"action": "search", "value": "ring"}),
        {"action": "search", "value": "ring"},
    ),
    "json-unicode": (
        encode_json({"value": "\U0001f436 caf\u00e9"}),
        {"value": "\U0001f436 caf\u00e9"},
    ),
    "json-utf16": (encode_json({"value": "\u00e9"}, "utf-16"), {"value": "\u00e9"}),
    "json-extra-header-keys": (encode_json({"a": 1}, extra_header={"request_id": 7}), {"a": 1}),
    "binary": (encode_binary(b"\x00\xffsearchring"), None),
    "binary-empty": (encode_binary(b""), None),
    "tutorial-client-binary": (
        framed.make_message(b"echohello", "binary/custom-client-binary-type", "binary"),
        None,
    ),
}

INVALID = {
    "zero-header-length": (b"\x00\x00", "header-not-json"),
    "header-not-utf8": (raw_frame(None, header_bytes=b"\xff\xfe{}"), "header-not-utf8"),
    "header-not-json": (raw_frame(None, header_bytes=b"{not json"), "header-not-json"),
    "header-is-a-list": (raw_frame(["byteorder"]), "header-not-object"),
    "header-is-a-string": (raw_frame("hello"), "header-not-object"),
    "missing-content-length": (raw_frame(header(**{"content-length": ...})), "missing-key"),
    "missing-byteorder": (raw_frame(header(byteorder=...)), "missing-key"),
    "length-is-a-string": (raw_frame(header(**{"content-length": "2"})), "bad-content-length"),
    "length-negative": (raw_frame(header(**{"content-length": -1})), "bad-content-length"),
    "length-is-a-bool": (raw_frame(header(**{"content-length": True})), "bad-content-length"),
    "length-is-a-float": (raw_frame(header(**{"content-length": 2.0})), "bad-content-length"),
    "type-not-a-string": (raw_frame(header(**{"content-type": 5})), "bad-type"),
    "encoding-is-null": (raw_frame(header(**{"content-encoding": None})), "bad-type"),
    "byteorder-middle": (raw_frame(header(byteorder="middle")), "bad-type"),
    "content-over-limit": (raw_frame(header(**{"content-length": LIMIT + 1})), "content-too-large"),
    "content-huge": (raw_frame(header(**{"content-length": 10**18})), "content-too-large"),
    "json-unknown-encoding": (
        raw_frame(header(**{"content-encoding": "klingon"}), b"{}"),
        "bad-encoding",
    ),
    "json-invalid-utf8": (raw_frame(header(**{"content-length": 3}), b'"\xff"'), "bad-encoding"),
    "json-content-not-json": (raw_frame(header(), b"{x"), "content-not-json"),
    "json-content-a-list": (raw_frame(header(), b"[]"), "content-not-object"),
}
