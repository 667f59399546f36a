"""The fuzzers' seeds: every framing case of the suite and every input of the crash-proofing
issue, each behind two steering bytes (see ``targets._chunks``). ``python tests/fuzz/seeds.py``
writes them to ``seeds/codec`` and ``seeds/app``; the suite checks they are all there and replays
them.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]  # the tests' helpers (framing_cases)

from framing_cases import INVALID, VALID, content_frame  # noqa: E402
from lab import framing  # noqa: E402

WHOLE, BYTEWISE, BY_7 = 0, 1, 7  # read sizes (0: all at once)
LIMIT_4K, EOF = 0x08, 0x80


ISSUE = {
    "deep-header": (2000).to_bytes(2, "big") + b"[" * 2000,
    "deep-content": content_frame(b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}"),
    "encoding-undefined": content_frame(b"{}", "undefined"),
    "encoding-punycode": content_frame(b"\xff{}", "punycode"),
    "encoding-idna": content_frame(b"..", "idna"),
    "encoding-long-name": content_frame(b"{}", "x" * 300),
    "encoding-utf16-odd": content_frame(b"{}x", "utf-16"),
    "lone-surrogate-echo": framing.encode_json({"action": "echo", "value": "\ud800"}, "ascii"),
    "pipelined-whoami": framing.encode_json({"action": "whoami"}) * 40,
    "search-a-list": framing.encode_json({"action": "search", "value": [1, [2, {"3": None}]]}),
    "bigint": content_frame(b'{"action": "echo", "value": ' + b"9" * 5000 + b"}"),
    "error-shaped-value": framing.encode_json({"action": "echo", "value": {"error": 5}}),
    "good-then-garbage": framing.encode_json({"action": "reverse", "value": "abc"}) + b"\0\5{{{{{",
    "commas-in-strings": framing.encode_json({"action": "echo", "value": ",[{" * 300}),
    "escaped-quotes-header": (4002).to_bytes(2, "big") + b'{"a": "' + b'\\"' * 1997,
    "escaped-quotes-content": content_frame(b'{"a": "' + b'\\"' * 1500),
    "reply-expands": content_frame(b'{"action": "echo", "value": [' + b"1e15," * 500 + b"1]}"),
}


# What a hostile server sends a client (the bounded-client issue's cases).
SERVER_REPLIES = {
    "good": (
        framing.encode_json({"result": "x #0"})
        + framing.encode_message(b"First 10 bytes of request: abc", "x", "binary")
        + framing.encode_json({"result": {"a": 1}})
    ),
    "extra-frames": framing.encode_json({"result": "x #0"}) * 5,
    "error-then-close": framing.encode_json(
        {"result": "x", "error": {"code": "memory-budget", "message": "full"}}
    ),
    "malformed-error": framing.encode_json({"error": [1, 2]}),
    "no-result": framing.encode_json({"answer": 1}),
    "escaped-quotes": content_frame(b'{"result": "' + b'\\"' * 2000),
    "huge-length": content_frame(b"")[:-2] + b"9" * 12,
}


def seeds(target: str = "codec") -> dict[str, bytes]:
    found = {}
    inputs = {
        **{f"valid-{k}": v[0] for k, v in VALID.items()},
        **{f"invalid-{k}": v[0] for k, v in INVALID.items()},
        **{f"issue-{k}": v for k, v in ISSUE.items()},
    }
    if target == "client":
        inputs = {f"server-{k}": v for k, v in SERVER_REPLIES.items()}
    for name, wire in inputs.items():
        found[f"{name}-whole"] = bytes([WHOLE, LIMIT_4K]) + wire
        found[f"{name}-bytewise-eof"] = bytes([BYTEWISE, LIMIT_4K | EOF]) + wire[:2000]
        found[f"{name}-by7-cut"] = bytes([BY_7, LIMIT_4K | EOF]) + wire[: len(wire) // 2]
    return found


def main() -> None:
    for target in ("codec", "app", "client"):
        folder = HERE / "seeds" / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds(target).items():
            (folder / name).write_bytes(data)
        print(f"wrote {len(seeds(target))} seeds for {target}")


if __name__ == "__main__":
    main()
