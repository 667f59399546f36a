"""The simple listeners' protocols: TCP echo and the greeting line."""

from __future__ import annotations

import socket

from lab.netinfo import endpoint

from .core import Protocol

ECHO_QUIET_S = 0.25  # at shutdown, an echo peer silent this long is between exchanges


class EchoProtocol(Protocol):
    """Echoes every byte back until the peer closes its side; then finishes sending and closes."""

    name = "tcp-echo"

    def data_received(self, data: memoryview) -> None:
        self.conn.write(data)

    def between_exchanges(self, now: float) -> bool:
        return now - self.conn.last_rx >= ECHO_QUIET_S


class GreetingProtocol(Protocol):
    """Sends one line naming this server and the client's address as seen here, then closes.

    Anything the client types is ignored, so ``nc`` and ``telnet`` both work.
    """

    name = "greeting"
    refusal = b"Sorry, the server is busy; try again later.\r\n"
    speaks_first = True
    hostname = socket.gethostname()

    def connection_made(self) -> None:
        conn = self.conn
        line = (f"Hello from {self.hostname} at {endpoint(conn.local)}! "
                f"You are {endpoint(conn.peer)}.\r\n")
        conn.write(line.encode())
        conn.close_when_flushed("greeted")

    def data_received(self, data: memoryview) -> None:
        pass
