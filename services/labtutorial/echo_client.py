"""Step 1b: the client for the echo servers. Connect, send everything, say "I am done
sending", read until the server closes.

    python3 echo_client.py HOST PORT MESSAGE

socket() -> connect() -> sendall() -> shutdown(SHUT_WR) -> recv() until b"" -> close().

Three things every client on a real network needs, each one line here:

- sendall(), not send(): send() may take only part of what you give it (the kernel's buffer
  was full), and returns how much; sendall() loops until all of it is sent.
- shutdown(SHUT_WR): the echo server reads until b"", which it only gets when we close our
  sending side. Without it, both sides wait for each other forever.
- recv() in a loop until b"": one recv() returns whatever has arrived so far, which across a
  network is often a piece of the message, not all of it (pieces.py shows the pieces).
"""

import socket
import sys

TIMEOUT_S = 10  # every socket gets a timeout: a server that never answers ends us, not hangs


def echo(host: str, port: int, message: bytes) -> bytes:
    # create_connection resolves the name and tries each address (IPv6 and IPv4) in turn.
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        here, there = sock.getsockname(), sock.getpeername()
        print(f"echo_client: connected from {here[0]} port {here[1]} to {there[0]} port {there[1]}")
        sock.sendall(message)
        sock.shutdown(socket.SHUT_WR)  # "I am done sending": the server's recv() returns b""
        received = b""
        pieces = 0
        while chunk := sock.recv(4096):  # b"": the server closed its side too
            received += chunk
            pieces += 1
    print(
        f"echo_client: sent {len(message)} bytes, received {len(received)} in {pieces} recv() calls"
    )
    return received


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    host, port, text = argv[0], int(argv[1]), argv[2]
    try:
        got = echo(host, port, text.encode())
    except OSError as exc:  # refused, unreachable, reset, timed out: one line, not a traceback
        print(f"echo_client: {host} port {port}: {exc}", file=sys.stderr)
        return 1
    if got != text.encode():
        print(f"echo_client: the echo differs: {got[:60]!r}", file=sys.stderr)
        return 1
    print(f"echo_client: the echo matches: {got.decode(errors='replace')!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
