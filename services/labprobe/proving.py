"""Proving servers: what a client under test talks to. Each is legal but unkind, as real networks
and servers are: it delivers the echo in small segments with pauses, or all at once, accepts
late, half-closes, resets after replying, reads a large message slowly, goes silent. It serves
one client, then reports what it saw as one JSON line: who connected, what arrived, what it sent.

The kit then reads the client's output and exit status (``labcheck.kit``): everything the
proving server sent back must appear in it, and the client must exit 0 only when it got it all.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ACCEPT_WITHIN_S = 15.0  # how long a proving server waits for the client to connect
QUIET_S = 0.3  # the client's message is over when nothing more arrives for this long


@dataclass(frozen=True)
class Behaviour:
    """How the proving server answers: the reply's shape in time, and how it ends."""

    segment: int = 0  # send the echo in pieces of this many bytes (0: at once)
    pause_s: float = 0.0  # between pieces
    accept_after_s: float = 0.0  # let the client wait in the backlog first
    ending: str = "close"  # close | half-close | reset | silent (never answers)
    slow_read: bool = False  # read the client's message slowly, with a small window


BEHAVIOURS: dict[str, Behaviour] = {
    "segments": Behaviour(segment=3, pause_s=0.05),
    "coalesced": Behaviour(),
    "late-accept": Behaviour(accept_after_s=1.0),
    "half-close": Behaviour(ending="half-close"),
    "reset-after-reply": Behaviour(ending="reset"),
    "slow-reader": Behaviour(slow_read=True),
    "silent": Behaviour(ending="silent"),
}


def read_message(conn: socket.socket, slow: bool) -> bytes:
    """What the client sends: until it half-closes, or goes quiet for QUIET_S."""
    data = bytearray()
    conn.settimeout(QUIET_S if not slow else 1.0)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(data) < 16 << 20:
        try:
            chunk = conn.recv(512 if slow else 65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        if slow:
            time.sleep(0.01)
    return bytes(data)


def serve(port: int, behaviour: Behaviour, say: Callable[[dict[str, Any]], None]) -> None:
    with socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True) as lsn:
        if behaviour.slow_read:  # a small window: a client's send() cannot hand it all over
            lsn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        say({"listening": port})
        time.sleep(behaviour.accept_after_s)
        lsn.settimeout(ACCEPT_WITHIN_S)
        try:
            conn, peer = lsn.accept()
        except TimeoutError:
            say({"connected": False})
            return
        with conn:
            message = read_message(conn, behaviour.slow_read)
            report: dict[str, Any] = {
                "connected": True,
                "peer": peer[0],
                "received": len(message),
                "message": message.decode("utf-8", "replace")[:200],
            }
            if behaviour.ending == "silent":
                say({**report, "sent": 0})  # what it saw, before it says nothing at all
                time.sleep(30)  # the client must give up by itself
                return
            sent = 0
            try:
                step = behaviour.segment or len(message) or 1
                for i in range(0, len(message), step):
                    conn.sendall(message[i : i + step])
                    sent += len(message[i : i + step])
                    if behaviour.pause_s:
                        time.sleep(behaviour.pause_s)
                if behaviour.ending == "half-close":
                    conn.shutdown(socket.SHUT_WR)
                    time.sleep(0.5)  # still reading: the client decides when it is over
                elif behaviour.ending == "reset":
                    time.sleep(0.1)
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError as exc:
                report["error"] = str(exc)
            say({**report, "sent": sent})


def main(argv: list[str]) -> int:
    """``python3 -m labprobe prove BEHAVIOUR PORT``"""
    name, port = argv[0], int(argv[1])

    def say(line: dict[str, Any]) -> None:
        print(json.dumps(line), flush=True)

    serve(port, BEHAVIOURS[name], say)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
