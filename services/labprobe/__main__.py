"""``python3 -m labprobe MODE ...``, run by the conformance kit in a container on the lab network.

server HOSTS_JSON PORTS_JSON CASE[,CASE...]  run these server cases; a JSON line each
slow-reader IPV4 PORT                        send, never read, until the server stops
                                             taking bytes; print "stalled"; then check that
                                             another client is served; a JSON line
hold IPV4 PORT                               connect, be echoed once, print "holding",
                                             stay until the server closes (or 30 s)
reach IPV4 IPV6 PORTS_JSON                   connect to each TCP port over IPv4 and over
                                             IPv6; a JSON line each: "ok" or the error
prove BEHAVIOUR PORT                         a proving server for a client under test
soak HOST SECONDS SEED WORKER [--trusting]   the soak's generator: operations of every kind,
                                             a history line as each starts and ends
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from . import cases, proving, soak

SLOW_READER_S = 5.0
SLOW_READER_MAX_S = 15.0
SLOW_READER_ENOUGH = 4 << 20  # twice what the kit lets a server grow
STILL_TAKING_S = 1.0  # a server that took nothing for this long has stopped reading


def server(hosts: str, ports: str, wanted: str) -> int:
    where = cases.Where(json.loads(hosts), json.loads(ports))
    for case_id in wanted.split(","):
        print(json.dumps(cases.by_id(case_id).run(where).to_json()), flush=True)
    return 0


def slow_reader(ipv4: str, port: int) -> int:
    """Send for SLOW_READER_S, never reading, and on (up to SLOW_READER_MAX_S) while the server
    still takes bytes and less than SLOW_READER_ENOUGH has gone: a server that buffers what it
    cannot send grows all that time (one starved of CPU takes the bytes slowly: on a busy
    machine the tutorial's multiconn loop took 1.6 MiB in 5 s). Then check that another client
    is served."""
    # Small buffers of our own (cases.slow_reader_socket): what we send waits in the server, not
    # in our kernel. With the kernel's own sizes, a server that buffers everything grew 1.6 MiB
    # on a busy machine for 9.7 MiB sent: the rest was in the two kernels' buffers.
    sock = cases.slow_reader_socket((ipv4, port))
    sock.setblocking(False)
    sent = 0
    chunk = os.urandom(65536)
    started = taken = time.monotonic()
    while (now := time.monotonic()) < started + SLOW_READER_MAX_S and sent < 64 << 20:
        if now >= started + SLOW_READER_S and (
            sent >= SLOW_READER_ENOUGH or now - taken >= STILL_TAKING_S
        ):
            break
        try:
            sent += sock.send(chunk)
            taken = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break  # the server dropped us: that bounds it too
    print(json.dumps({"stalled": True, "sent": sent}), flush=True)
    started = time.monotonic()
    try:
        got, _ = cases.echo((ipv4, port), b"meanwhile")
    except OSError:
        got = b""
    print(
        json.dumps(
            {
                "sent": sent,
                "other_served": got == b"meanwhile",
                "other_waited_s": round(time.monotonic() - started, 3),
            }
        ),
        flush=True,
    )
    sock.close()
    return 0


def reach(ipv4: str, ipv6: str, ports: str) -> int:
    for protocol, port in json.loads(ports).items():
        outcome = {"protocol": protocol}
        for version, host in (("ipv4", ipv4), ("ipv6", ipv6)):
            try:
                with socket.create_connection((host, port), timeout=cases.TIMEOUT_S):
                    outcome[version] = "ok"
            except OSError as exc:
                outcome[version] = type(exc).__name__
        print(json.dumps(outcome), flush=True)
    return 0


def hold(ipv4: str, port: int) -> int:
    with socket.create_connection((ipv4, port), timeout=cases.TIMEOUT_S) as sock:
        sock.sendall(b"x")
        sock.recv(1)
        print(json.dumps({"holding": True}), flush=True)
        sock.settimeout(30)
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
    return 0


def main(argv: list[str]) -> int:
    mode, args = argv[0], argv[1:]
    if mode == "server":
        return server(*args)
    if mode == "slow-reader":
        return slow_reader(args[0], int(args[1]))
    if mode == "reach":
        return reach(*args)
    if mode == "hold":
        return hold(args[0], int(args[1]))
    if mode == "prove":
        return proving.main(args)
    if mode == "soak":
        return soak.main(args)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
