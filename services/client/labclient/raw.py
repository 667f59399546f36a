"""``raw``: send arbitrary bytes, see what comes back -- nc for the lab, and the tests' probe.

Each payload goes on a connection of its own: connect, send, optionally half-close, then read
until the server closes (or ``timeout`` passes with nothing new). What came back is reported as
text and, where it parses, as framed replies.
"""

from __future__ import annotations

import socket

from lab import framing

from .results import RawProbe, RawResult
from .transport import Target, connect, endpoints


def _frames(data: bytes) -> list[dict]:
    decoder = framing.MessageDecoder(len(data) + 1)
    decoder.feed(data)
    found = []
    try:
        for message in decoder.messages():
            found.append(message.value if message.is_json
                         else {"content_type": message.content_type,
                               "content": message.content.decode("utf-8", "replace")})
    except framing.RemoteProtocolError:
        pass  # not (all) framed: the text is still reported
    return found


def probe(target: Target, payload: bytes, half_close: bool) -> RawProbe:
    sock, attempts = connect(target)
    received = bytearray()
    closed = reset = False
    with sock:
        info = endpoints(sock)
        try:
            sock.sendall(payload)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                received += chunk
            closed = True
        except TimeoutError:
            pass  # the server kept the connection open: reported as not closed
        except (ConnectionResetError, BrokenPipeError):
            closed = reset = True
    return RawProbe(**info, sent=len(payload), received=len(received),
                    text=received.decode("utf-8", "replace")[:4096], replies=_frames(received),
                    closed_by_server=closed, reset=reset, attempts=attempts)


def run(target: Target, payloads: list[bytes], half_close: bool) -> RawResult:
    probes = [probe(target, p, half_close) for p in payloads]
    if len(probes) == 1:
        return RawResult(probes[0], probes=probes)
    return RawResult(probes=probes, **{k: probes[0][k] for k in (
        "family", "local_ip", "local_port", "peer_ip", "peer_port")})
