"""Step 2: TCP is a stream of bytes, not of messages. See it.

    python3 pieces.py recv HOST PORT [SIZE]   send SIZE bytes (1 MiB) to an echo server and
                                              print what each recv() returned: pieces
    python3 pieces.py hold PORT               a peer that accepts and never reads (for send)
    python3 pieces.py send HOST PORT          send() to a peer that does not read: it takes
                                              less and less, then nothing

recv(65536) returns what has arrived, from 1 byte to 65536, never "the message": on loopback a
big echo often comes in a few large pieces, across a network in many, of sizes that change
from run to run. A program that assumes one recv() is one message works on loopback and breaks
across hosts. send() puts bytes into the kernel's buffer and returns how many fit: when the
peer does not read, its buffer fills, then ours, and send() takes less than it was given, then
nothing (here: a timeout). sendall() is the loop that handles this for you.
"""

import socket
import sys
import time
from collections import Counter

TIMEOUT_S = 5.0
HOLD_S = 30  # the holder lets go after this: the demo ends by itself
SEND_BUFFER = 64 << 10


def recv_sizes(host: str, port: int, size: int) -> list[int]:
    payload = bytes(i % 251 for i in range(size))
    sizes = []
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(65536):
            sizes.append(len(chunk))
    common = ", ".join(f"{n} x {size}" for size, n in Counter(sizes).most_common(4))
    print(f"pieces: sent {size} bytes in one sendall(); the echo came in {len(sizes)} recv() calls")
    print(f"pieces: the first ten: {sizes[:10]}")
    print(f"pieces: the most common sizes: {common}")
    print(f"pieces: {sum(sizes)} bytes in all, {'all' if sum(sizes) == size else 'NOT all'} there")
    return sizes


def hold(port: int) -> None:
    with socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True) as srv:
        srv.settimeout(HOLD_S)
        print(f"pieces: holding on port {port}: accepting, never reading", flush=True)
        try:
            conn, addr = srv.accept()
        except TimeoutError:
            return
        with conn:
            print(f"pieces: {addr[0]} port {addr[1]} connected; not reading", flush=True)
            time.sleep(HOLD_S)


def send_returns(host: str, port: int) -> list[int]:
    block = b"x" * (1 << 20)
    returns = []
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        # A small send buffer (the kernel doubles it) so that the effect shows at once; with
        # the default, the first few calls may each take the whole MiB before the buffers fill.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        sock.settimeout(1.0)  # one second without room in the buffer: the peer is not reading
        while True:
            try:
                sent = sock.send(block)  # ONE call: it returns how much it took
            except TimeoutError:
                break
            returns.append(sent)
            print(f"pieces: send() of {len(block)} bytes returned {sent}", flush=True)
    print(
        f"pieces: {sum(returns)} bytes taken in {len(returns)} send() calls, then none for 1 s: "
        f"the peer's receive buffer and our send buffer are full"
    )
    return returns


def send_returns_when_ready(host: str, port: int, within_s: float = 5.0) -> list[int]:
    """send_returns, once the holder listens (it may still be starting)."""
    until = time.monotonic() + within_s
    while True:
        try:
            return send_returns(host, port)
        except ConnectionRefusedError:
            if time.monotonic() > until:
                raise
            time.sleep(0.1)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["recv"] and len(argv) in (3, 4):
            recv_sizes(argv[1], int(argv[2]), int(argv[3]) if len(argv) == 4 else 1 << 20)
        elif argv[:1] == ["hold"] and len(argv) == 2:
            hold(int(argv[1]))
        elif argv[:1] == ["send"] and len(argv) == 3:
            send_returns_when_ready(argv[1], int(argv[2]), within_s=30)
        else:
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2
    except OSError as exc:
        print(f"pieces: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
