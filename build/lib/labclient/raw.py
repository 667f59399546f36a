"""``raw``: send arbitrary bytes, see what comes back -- nc for the lab, and the tests' probe.

Each payload goes on a connection of its own: connect, send, optionally half-close, then read
until the server closes, ``timeout`` passes with nothing new, the exchange's overall deadline
passes, or RAW_MAX_BYTES have come back (the rest is not read, and the result says so). What
came back is reported as text and, where it parses, as framed replies.
"""

from __future__ import annotations

import socket
from typing import Any

from lab import framing

from .results import RawProbe, RawResult
from .transport import Target, connect, endpoints

RAW_MAX_BYTES = 1 << 20  # what one probe keeps of a server's answer


def _frames(data: bytes | bytearray) -> list[Any]:
    decoder = framing.MessageDecoder(len(data) + 1)
    decoder.feed(data)
    found = []
    try:
        for message in decoder.messages():
            found.append(
                message.value
                if message.is_json
                else {
                    "content_type": message.content_type,
                    "content": message.content.decode("utf-8", "replace"),
                }
            )
    except framing.RemoteProtocolError:
        pass  # not (all) framed: the text is still reported
    return found


def probe(target: Target, payload: bytes, half_close: bool) -> RawProbe:
    sock, attempts = connect(target)
    deadline = target.clock()
    received = bytearray()
    closed = reset = out_of_time = False
    with sock:
        ends = endpoints(sock)
        try:
            sock.sendall(payload)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            while len(received) < RAW_MAX_BYTES:
                left = deadline.left()
                if left <= 0:
                    out_of_time = True
                    break
                sock.settimeout(min(target.timeout_s, left))
                if not (chunk := sock.recv(min(65536, RAW_MAX_BYTES - len(received)))):
                    closed = True
                    break
                received += chunk
        except TimeoutError:
            out_of_time = deadline.left() <= 0  # else: the server kept the connection open
        except (ConnectionResetError, BrokenPipeError):
            closed = reset = True
    stopped = (
        ""
        if closed
        else f"stopped reading after {RAW_MAX_BYTES} bytes"
        if len(received) >= RAW_MAX_BYTES
        else f"stopped after {target.max_time_s:g}s in all"
        if out_of_time
        else ""
    )
    return RawProbe(
        ends,
        sent=len(payload),
        received=len(received),
        text=received.decode("utf-8", "replace")[:4096],
        replies=tuple(_frames(received)),
        closed_by_server=closed,
        reset=reset,
        attempts=attempts,
        stopped=stopped,
    )


def run(target: Target, payloads: list[bytes], half_close: bool) -> RawResult:
    probes = tuple(probe(target, p, half_close) for p in payloads)
    return RawResult(probes[0], probes)
