"""The benchmark's load generator: several processes, so that it is not the bottleneck.

    python3 -m labbench.loadgen WORKLOAD --host H --port P [--conns N] [--size B] [--duration S]
                                     [--processes K] [--idle N] [--engine E]

Workloads (every one bounded by --duration; connections are split across --processes):
  rr    request/response: each connection sends SIZE bytes, waits for all of them back, repeats
  app   the same with the framed protocol's echo action (one request, one reply)
  bulk  one connection: 64 KiB writes as fast as the echo comes back
  udp   512-byte datagrams, 128 in flight per process; rate and loss (no echo in 50 ms)
  idle  hold N idle connections open, meanwhile time fresh connect+1 KiB round trips
  hold  the scale sweep's holder: open N connections as fast as the server takes them (a
        window of connects in flight), print what it took, hold them until --release-file
        appears (at most --hold-max seconds), then count those still open and reset them all
  fresh only the fresh connect+1 KiB round trips, for --duration (from another container
        while the holders hold)

rr and app run their clients on uvloop when the image has it (--engine), else on selectors:
a Python load generator on one core must not be slower than the servers it measures.

Prints one JSON object: counts, latency percentiles in microseconds, errors, its own CPU, and
the wall-clock window it measured (so the caller can read the server's CPU over that window).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import multiprocessing
import os
import resource
import selectors
import socket
import struct
import time
import typing
from pathlib import Path
from typing import Any

from lab.appconn import ClientConnection, Reply, Request, ServerConnection

try:  # in the tools image when scripts/fetch-wheels.sh could download it
    import uvloop
except ImportError:
    uvloop = None

CHUNK = 65536
UDP_WINDOW = 128  # datagrams in flight per process
UDP_LOST_AFTER_S = 0.05  # unanswered this long: lost, and replaced
CONNECT_WINDOW = 256  # a holder's connects in flight (its share of the server's backlog)
CONNECT_TIMEOUT_S = 10.0
RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset, no TIME_WAIT


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _app_request(size: int) -> tuple[bytes, int]:
    """An echo request's bytes and its reply's length (the reply is counted, not decoded: the
    load generator must not be the bottleneck)."""
    request = ClientConnection().send(Request("echo", "x" * size))
    return request, len(ServerConnection().send(Reply("x" * size)))


def rr_worker(
    host: str, port: int, conns: int, size: int, start: float, end: float, app: bool
) -> dict:
    """Closed-loop request/response on ``conns`` connections until ``end`` (epoch seconds)."""
    request, reply_len = _app_request(size) if app else (os.urandom(size), size)
    selector = selectors.DefaultSelector()
    state: dict[socket.socket, list[Any]] = {}
    errors = 0
    for _ in range(conns):
        sock = _connect(host, port)
        state[sock] = [0, 0.0, 0]  # bytes received of the reply, send time, bytes sent
        selector.register(sock, selectors.EVENT_READ)
    latencies: list[int] = []
    while time.time() < start:
        time.sleep(0.001)

    def send(sock: socket.socket) -> None:
        entry = state[sock]
        entry[0], entry[1], entry[2] = 0, time.perf_counter(), 0
        entry[2] = sock.send(request)
        if entry[2] < len(request):
            selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)

    for sock in list(state):
        send(sock)
    while time.time() < end and state:
        for key, mask in selector.select(0.2):
            sock = typing.cast(socket.socket, key.fileobj)
            entry = state[sock]
            try:
                if mask & selectors.EVENT_WRITE:
                    entry[2] += sock.send(request[entry[2] :])
                    if entry[2] == len(request):
                        selector.modify(sock, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    data = sock.recv(CHUNK)
                    if not data:
                        raise ConnectionError("closed by the server")
                    entry[0] += len(data)
                    if entry[0] >= reply_len:
                        latencies.append(int((time.perf_counter() - entry[1]) * 1e6))
                        send(sock)
            except BlockingIOError:
                continue
            except OSError:
                errors += 1
                selector.unregister(sock)
                del state[sock]
                sock.close()
    for sock in state:
        sock.close()
    return {"latencies": latencies, "errors": errors, "bytes": len(latencies) * size * 2}


def rr_worker_uvloop(
    host: str, port: int, conns: int, size: int, start: float, end: float, app: bool
) -> dict:
    """``rr_worker`` with callbacks on uvloop (libuv): a few microseconds of the load
    generator's core per request, so that it can drive servers faster than a Python loop."""
    request, reply_len = _app_request(size) if app else (os.urandom(size), size)
    latencies: list[int] = []
    errors = 0
    clock = time.perf_counter
    stop_at = clock() + (end - time.time())  # the window's end on the monotonic clock
    closing = False  # we close them at the end: not an error

    class Client(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport, self.got, self.sent_at = transport, 0, 0.0

        def send(self) -> None:
            self.got, self.sent_at = 0, clock()
            self.transport.write(request)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            self.got += len(data)
            if self.got >= reply_len:
                now = clock()
                latencies.append(int((now - self.sent_at) * 1e6))
                if now < stop_at:
                    self.send()

        def connection_lost(self, exc: Exception | None) -> None:
            nonlocal errors
            if not closing:
                errors += 1

    async def drive() -> None:
        nonlocal closing
        loop = asyncio.get_running_loop()
        clients = []
        for _ in range(conns):
            _, client = await loop.create_connection(Client, host, port)
            clients.append(client)
        await asyncio.sleep(max(0.0, start - time.time()))
        for client in clients:
            client.send()
        await asyncio.sleep(max(0.0, end - time.time()))
        closing = True
        for client in clients:
            typing.cast(asyncio.Transport, client.transport).abort()

    uvloop.run(drive())
    return {"latencies": latencies, "errors": errors, "bytes": len(latencies) * size * 2}


def bulk_worker(host: str, port: int, start: float, end: float) -> dict:
    sock = _connect(host, port)
    chunk = os.urandom(CHUNK)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    while time.time() < start:
        time.sleep(0.001)
    received = errors = 0
    measured_from = time.perf_counter()
    while time.time() < end:
        for _, mask in selector.select(0.2):
            try:
                if mask & selectors.EVENT_WRITE:
                    sock.send(chunk)
                if mask & selectors.EVENT_READ:
                    received += len(sock.recv(4 * CHUNK))
            except BlockingIOError:
                continue
            except OSError:
                errors += 1
                break
    elapsed = time.perf_counter() - measured_from
    sock.close()
    return {"latencies": [], "errors": errors, "bytes": received, "elapsed": elapsed}


def udp_worker(host: str, port: int, size: int, start: float, end: float) -> dict:
    family, _, _, _, addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.connect(addr)
    sock.setblocking(False)
    pad = os.urandom(max(0, size - 8))
    sent_at: dict[int, float] = {}
    latencies: list[int] = []
    seq = 0
    while time.time() < start:
        time.sleep(0.001)

    def send_one() -> None:
        nonlocal seq
        sent_at[seq] = time.perf_counter()
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError):  # counted as lost
            sock.send(seq.to_bytes(8, "big") + pad)
        seq += 1

    for _ in range(UDP_WINDOW):
        send_one()
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    while time.time() < end:
        ready = selector.select(UDP_LOST_AFTER_S / 2)
        now = time.perf_counter()
        # A datagram unanswered for UDP_LOST_AFTER_S is lost (a late echo is not counted):
        # send another in its place, so that losses do not shrink the window.
        while sent_at and now - sent_at[oldest := next(iter(sent_at))] > UDP_LOST_AFTER_S:
            del sent_at[oldest]
            send_one()
        if not ready:
            continue
        while True:
            try:
                data = sock.recv(size + 64)
            except (BlockingIOError, ConnectionRefusedError):
                break
            number = int.from_bytes(data[:8], "big")
            if (sent := sent_at.pop(number, None)) is not None:
                latencies.append(int((time.perf_counter() - sent) * 1e6))
                send_one()
    sock.close()
    return {"latencies": latencies, "errors": 0, "bytes": len(latencies) * size * 2, "sent": seq}


def idle_holder(host: str, port: int, count: int, ready: object, release: object) -> dict:
    """Open ``count`` connections, say so, and hold them (never longer than 5 minutes).

    ``held``: those still open at the end of the hold. A connection the server accepted and
    then closed (the threaded step past its pids limit turns clients away like that) has its
    FIN or reset waiting: it counts as ``turned_away``, not as held; ``connect_failed`` never
    connected at all."""
    socks = []
    failed = 0
    for _ in range(count):
        try:
            socks.append(socket.create_connection((host, port), timeout=10))
        except OSError:
            failed += 1
    ready.set()  # type: ignore[attr-defined]
    release.wait(300)  # type: ignore[attr-defined]
    held = still_open(socks)
    for sock in socks:
        sock.close()
    return {
        "latencies": [],
        "errors": 0,
        "bytes": 0,
        "held": held,
        "turned_away": len(socks) - held,
        "connect_failed": failed,
    }


def open_many(
    host: str, port: int, count: int, window: int = CONNECT_WINDOW
) -> tuple[list[socket.socket], int, float, float]:
    """Open ``count`` connections with at most ``window`` connects in flight: the sockets
    connected, how many failed (refused, reset or not answered in CONNECT_TIMEOUT_S), and the
    wall-clock times of the first connect and of the last handshake."""
    family, kind, _, _, addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0]
    selector = selectors.DefaultSelector()
    opened: list[socket.socket] = []
    pending: dict[socket.socket, float] = {}
    failed = launched = 0
    first = time.time()
    while len(opened) + failed < count:
        while launched < count and len(pending) < window:
            launched += 1
            sock = socket.socket(family, kind)
            sock.setblocking(False)
            if sock.connect_ex(addr) not in (0, errno.EINPROGRESS):
                failed += 1
                sock.close()
                continue
            pending[sock] = time.monotonic()
            selector.register(sock, selectors.EVENT_WRITE)
        for key, _ in selector.select(0.5):
            sock = typing.cast(socket.socket, key.fileobj)
            selector.unregister(sock)
            del pending[sock]
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                failed += 1
                sock.close()
            else:
                opened.append(sock)
        now = time.monotonic()
        for sock in [s for s, t in pending.items() if now - t > CONNECT_TIMEOUT_S]:
            selector.unregister(sock)
            del pending[sock]
            failed += 1
            sock.close()
    selector.close()
    return opened, failed, first, time.time()


def still_open(socks: list[socket.socket]) -> int:
    """How many of these connections the server has not closed or reset (a peek, not a wait)."""
    held = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            held += sock.recv(1, socket.MSG_PEEK) != b""  # b"": closed by the server
        except BlockingIOError:
            held += 1  # nothing to read, still open
        except OSError:
            pass  # reset by the server
    return held


def hold(args: argparse.Namespace) -> None:
    """The scale sweep's holder: two JSON lines, one when its connections are open, one when
    they are counted and reset. Bounded: --hold-max seconds at most between the two."""
    while time.time() < args.start:
        time.sleep(0.001)
    socks, failed, first, last = open_many(args.host, args.port, args.idle)
    print(
        json.dumps({"opened": len(socks), "connect_failed": failed, "first": first, "last": last}),
        flush=True,
    )
    deadline = time.monotonic() + args.hold_max
    release = Path(args.release_file)
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    held = still_open(socks)
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        sock.close()
    result = {"held": held, "turned_away": len(socks) - held, "connect_failed": failed}
    print(json.dumps(result), flush=True)


def fresh_rr(host: str, port: int, end: float) -> dict:
    """Sequential fresh connections: connect, 1 KiB out and back, close."""
    payload = os.urandom(1024)
    latencies, errors = [], 0
    while time.time() < end:
        started = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(payload)
                got = 0
                while got < len(payload):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    got += len(chunk)
            latencies.append(int((time.perf_counter() - started) * 1e6))
        except OSError:
            errors += 1
    return {"latencies": latencies, "errors": errors, "bytes": len(latencies) * 2048}


def _cpu_seconds() -> float:
    """CPU used by this process and its finished workers (the pool's, once it has closed)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def percentile(sorted_values: list[int], fraction: float) -> int | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run(args: argparse.Namespace) -> dict:
    processes = max(1, min(args.processes, args.conns if args.workload in ("rr", "app") else 99))
    if args.workload == "fresh":
        processes = 1
    cpu_before = _cpu_seconds()
    with multiprocessing.Pool(processes) as pool:
        # Every process connects first, then all start together: the start is set once the
        # processes are there (set before them, a busy machine once started a UDP worker after
        # the window had closed: 128 datagrams sent, none counted).
        start = time.time() + 0.5
        end = start + args.duration
        if args.workload == "fresh":
            start, end = time.time(), time.time() + args.duration
            parts = [fresh_rr(args.host, args.port, end)]
        elif args.workload in ("rr", "app"):
            jobs = [
                (args.host, args.port, n, args.size, start, end, args.workload == "app")
                for n in split(args.conns, processes)
                if n
            ]
            parts = pool.starmap(rr_worker_uvloop if args.engine == "uvloop" else rr_worker, jobs)
        elif args.workload == "bulk":
            parts = [bulk_worker(args.host, args.port, start, end)]
        elif args.workload == "udp":
            parts = pool.starmap(
                udp_worker,
                [(args.host, args.port, args.size, start, end) for _ in range(processes)],
            )
        else:  # idle
            manager = multiprocessing.Manager()
            events, release = [manager.Event() for _ in range(processes)], manager.Event()
            held = pool.starmap_async(
                idle_holder,
                [
                    (args.host, args.port, n, event, release)
                    for n, event in zip(split(args.idle, processes), events, strict=True)
                ],
            )
            for event in events:
                event.wait(120)
            start = time.time()
            end = start + args.duration
            fresh = fresh_rr(args.host, args.port, end)
            release.set()
            parts = [fresh, *held.get(180)]
    cpu_after = _cpu_seconds()
    latencies = sorted(x for part in parts for x in part["latencies"])
    elapsed = end - start
    count = len(latencies)
    result = {
        "workload": args.workload,
        "conns": args.conns,
        "size_bytes": args.size,
        "duration_s": args.duration,
        "window": [start, end],
        "processes": processes,
        "requests": count,
        "req_per_s": round(count / elapsed, 1) if count else None,
        "mb_per_s": round(sum(p["bytes"] for p in parts) / elapsed / 1e6, 2),
        "p50_us": percentile(latencies, 0.50),
        "p99_us": percentile(latencies, 0.99),
        "p999_us": percentile(latencies, 0.999),
        "errors": sum(p["errors"] for p in parts),
        "loadgen_cpu_pct": round(100 * (cpu_after - cpu_before) / elapsed, 1),
    }
    if args.workload == "udp":
        sent = sum(p["sent"] for p in parts)
        result["sent"] = sent
        result["loss_pct"] = round(100 * (sent - count) / sent, 2) if sent else None
    if args.workload == "idle":
        for key in ("held", "turned_away", "connect_failed"):
            result[key] = sum(p.get(key, 0) for p in parts)
        result["conns"] = args.idle
    if args.workload == "bulk":
        result["req_per_s"] = None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=["rr", "app", "bulk", "udp", "idle", "hold", "fresh"])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--start", type=float, default=0.0, help="hold: begin at this epoch time")
    parser.add_argument(
        "--release-file",
        default="/tmp/release",  # noqa: S108 (the holder container's own tmpfs)
        help="hold: reset when this file appears",
    )
    parser.add_argument("--hold-max", type=float, default=120.0, help="hold: at most this long")
    parser.add_argument(
        "--engine",
        choices=("auto", "uvloop", "selectors"),
        default="auto",
        help="the rr and app clients' loop: uvloop when the image has it",
    )
    args = parser.parse_args()
    if args.workload == "hold":
        hold(args)
        return
    if args.engine == "auto":
        args.engine = "selectors" if uvloop is None else "uvloop"
    result = run(args)
    result["engine"] = args.engine if args.workload in ("rr", "app") else "selectors"
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
