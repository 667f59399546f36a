"""Clients that show each tutorial server's limits, run inside the lab's client image (stdlib).

    python3 learner_peers.py wait HOST PORT HOLD_S       A connects and is echoed, then B tries
        while A stays connected for HOLD_S; prints how long B waited, with A open and in all
    python3 learner_peers.py idle HOST PORT N HOLD_S [T]  N clients connect, each echoed once
        (waiting at most T s), print "holding", stay idle for HOLD_S; then one more client is
        timed; prints how many were served
    python3 learner_peers.py slow-reader HOST PORT BYTES HOLD_S [T]   sends up to BYTES and
        never reads, stopping once the server has taken nothing for T s (2); prints "sent N"
        as soon as it stops sending, holds, then closes

Every socket has a timeout; each mode stops by itself. One JSON line on stdout at the end.
"""

from __future__ import annotations

import json
import socket
import sys
import time

TIMEOUT_S = 5.0


def echo_once(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.monotonic()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(len(payload) - len(got))
        if not chunk:
            raise ConnectionError("closed before the echo")
        got += chunk
    return time.monotonic() - started


def connect(host: str, port: int, timeout_s: float = TIMEOUT_S) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout_s)


def wait(host: str, port: int, hold_s: float) -> dict:
    a = connect(host, port)
    echo_once(a)
    b = connect(host, port, timeout_s=hold_s)  # the handshake completes in the backlog
    started = time.monotonic()
    try:
        echo_once(b)
        while_a_open = time.monotonic() - started
    except TimeoutError:
        while_a_open = None
    a.close()
    b.settimeout(TIMEOUT_S)
    if while_a_open is None:
        b.recv(4)  # the echo, once the server has finished with A
    waited = time.monotonic() - started
    b.close()
    return {"b_served_while_a_open_s": while_a_open, "b_waited_s": waited}


def idle(host: str, port: int, count: int, hold_s: float, timeout_s: float) -> dict:
    clients, served, refused = [], 0, 0
    for _ in range(count):
        try:
            sock = connect(host, port, timeout_s=timeout_s)
            echo_once(sock)
            served += 1
            clients.append(sock)
        except OSError:
            refused += 1
    print(f"holding {served}", flush=True)
    time.sleep(hold_s)  # idle on purpose: the server holds them without traffic
    try:
        fresh = connect(host, port, timeout_s=timeout_s)
        fresh_s = echo_once(fresh)
        fresh.close()
    except OSError:
        fresh_s = None
    for sock in clients:
        sock.close()
    return {"served": served, "not_served": refused, "fresh_echo_s": fresh_s}


def slow_reader(host: str, port: int, size: int, hold_s: float, patience_s: float) -> dict:
    sock = connect(host, port, timeout_s=patience_s)
    chunk, sent = b"x" * 65536, 0
    try:
        while sent < size:
            sent += sock.send(chunk[: size - sent])
    except TimeoutError:
        pass  # the server stopped reading us (or cannot keep up): stop sending
    print(f"sent {sent}", flush=True)
    time.sleep(hold_s)  # never reading: the echo piles up somewhere
    sock.close()
    return {"sent": sent}


if __name__ == "__main__":
    mode, host, port, *rest = sys.argv[1:]

    def optional(default_s: float) -> float:
        """The optional [T]: idle's wait for each echo, slow-reader's patience."""
        return float(rest[2]) if len(rest) > 2 else default_s

    if mode == "wait":
        out = wait(host, int(port), float(rest[0]))
    elif mode == "idle":
        out = idle(host, int(port), int(rest[0]), float(rest[1]), optional(1.0))
    else:
        out = slow_reader(host, int(port), int(rest[0]), float(rest[1]), optional(2.0))
    print(json.dumps(out), flush=True)
