"""The contract between the loop and the application: transports and protocols, TCP and UDP.

As in asyncio, a *transport* owns a socket and a *protocol* owns the application's state; the
two meet only through the methods below, so a protocol can be driven by the real loop
(``transport.TcpTransport``) or by a test's in-memory transport alike::

    loop ── readiness ──▶ TcpTransport ── data_received(view) ──▶ Protocol
                              ▲                                     │
                              └──── write / close / pause_reading ──┘
                                    request_work ──▶ the loop's fair work queue ──▶ work(until)

Flow control (asyncio's, with the bytes *held* as its measure):

- A transport holds a connection's write buffer, and its protocol says what it holds itself
  (``buffered_bytes``: a decoder's buffer, requests not yet answered). Reading stops while the
  two together are at the connection's high-water mark and resumes below half of it; a read
  never asks the kernel for more than the room left, so the mark holds whatever the peer does.
- When the write buffer passes its own high-water mark the transport calls ``pause_writing``,
  and ``resume_writing`` once it has drained below half: the default is to stop reading (an echo
  peer that does not read cannot make us buffer), a protocol with requests to answer stops
  answering instead.
- ``connection_lost(reason)`` is always called once, last: the protocol lets go of what it
  holds, and the transport forgets the protocol, so nothing outlives the connection even with the
  cyclic garbage collector switched off.

Work that costs more than a copy (parsing and answering requests) is not done where bytes arrive:
the protocol calls ``request_work()`` and the loop calls its ``work(until)`` back in a fair
order (the connection that has had the least time so far goes first), so one connection's
costly requests cannot hold up everybody else's.
"""

from __future__ import annotations

import contextlib
from typing import Any, runtime_checkable
from typing import Protocol as Interface

from lab.netinfo import Peer


@runtime_checkable
class Transport(Interface):
    """What a TCP protocol may use of its connection (and nothing else)."""

    conn_id: int
    peer: Peer  # the other end, parsed once
    local: Peer  # our end of this connection

    def time(self) -> float:
        """The loop's clock (monotonic seconds), read once per loop turn."""
        ...

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """Send ``data`` (copied; the caller may reuse it). False, with nothing sent, when the
        server's memory budget cannot take what would have to wait in the write buffer: the
        protocol answers with something small instead, or closes."""
        ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool:
        """Closed, or closing: nothing more will be sent."""
        ...

    def close(self, reason: str) -> None:
        """Send what is buffered, then close (half-close first, so a last reply is read
        before any reset). ``reason`` goes into the log line."""
        ...

    def abort(self, reason: str, farewell: bytes = b"") -> None:
        """Drop what is buffered, try ``farewell`` once without waiting, and close now."""
        ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def reading_paused_s(self) -> float:
        """How long reading has been paused for back-pressure in all (deadlines that the
        peer cannot meet while we do not read stand still meanwhile)."""
        ...

    def check_by(self, when: float) -> None:
        """Have the loop check this connection's deadlines (``check_deadline``) at ``when``
        or before: a protocol that starts a clock asks for it (the loop otherwise looks at a
        connection only when one of its own time limits may have come)."""
        ...

    def idle_s(self) -> float:
        """How long since a byte last moved, either way."""
        ...

    def request_work(self) -> None:
        """Ask the loop to call the protocol's ``work(until)`` in a coming turn."""
        ...

    def warn(self, kind: str, msg: str, *args: object, **fields: object) -> None:
        """A warning, rate-limited per ``kind`` (``limits.WarningLimiter``)."""
        ...


class Protocol:
    """One TCP connection's application logic. Subclass and override the hooks you need.

    Hooks, called by the transport: ``connection_made(transport)``, ``data_received(data)``
    (``data`` is a view of the loop's receive buffer, valid only during the call: copy what you
    keep), ``eof_received()``, ``pause_writing()`` / ``resume_writing()``, ``work(until)``,
    ``connection_lost(reason)`` (the base class then lets go of ``transport``). Asked by the
    loop: ``buffered_bytes()`` (what the protocol holds, counted with the write buffer; only
    when ``buffers`` is true), ``in_exchange(now)`` (may a shutdown not close us yet?),
    ``check_deadline(now)`` (housekeeping, once a second), ``goodbye(reason)`` (a last word
    when a limit closes us). Class attributes: ``name`` labels log lines, ``refusal`` is sent
    to a peer turned away at capacity, ``speaks_first`` exempts from the first-byte timeout.
    """

    __slots__ = ("__weakref__", "transport")  # a subclass without __slots__ has a __dict__
    name = "tcp"
    refusal = b""
    speaks_first = False
    buffers = False  # does buffered_bytes() ever say more than 0? (the hot path asks only then)
    transport: Transport  # from connection_made until connection_lost (then it is gone)

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport

    def data_received(self, data: memoryview) -> None:
        raise NotImplementedError

    def eof_received(self) -> None:
        self.transport.close("peer closed")

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def work(self, until: float) -> bool:
        """Do queued work until the ``time.perf_counter()`` value ``until`` (at least one unit);
        return True if some is left (the loop calls again later, after others' turns)."""
        return False

    def connection_lost(self, reason: str) -> None:
        with contextlib.suppress(AttributeError):  # let go of it (once: a second call is fine)
            del self.transport

    def buffered_bytes(self) -> int:
        return 0

    def in_exchange(self, now: float) -> bool:
        return False

    def check_deadline(self, now: float) -> None:
        pass

    def goodbye(self, reason: str) -> bytes:
        """What to tell a peer whose connection a limit closes (``reason``), if anything."""
        return b""


@runtime_checkable
class DatagramTransport(Interface):
    """What a UDP protocol may use of its listener."""

    port: int

    def time(self) -> float: ...

    def sendto(self, data: bytes | memoryview, peer: Peer) -> bool:
        """Send a datagram; False (and counted) if the kernel would not take it."""
        ...

    def warn(self, kind: str, msg: str, *args: object, **fields: object) -> None: ...


class DatagramProtocol:
    """What a UDP listener does with each datagram. ``datagram_received(data, peer)`` may answer
    with ``self.transport.sendto(data, peer)``; ``data`` is valid only during the call.
    ``stats()`` goes into the server's closing summary."""

    name = "udp"
    transport: DatagramTransport  # from connection_made on

    def connection_made(self, transport: DatagramTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: memoryview, peer: Peer) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {}
