"""The framed application protocol's server side: bytes to requests (``lab.framing``), requests
to answers (``lab.appproto``), answers back in order.

A connection carries any number of requests; requests sent back to back (pipelined) are answered
in order. Bytes that arrive are only buffered (a copy); decoding and answering happen in
``work``, which the loop calls in its fair order and which stops after its slice of time, or
when the write buffer is full (``pause_writing``: the peer is not reading its replies; reading
then goes on only up to the connection's high-water mark). So neither the requests' cost nor
their number can hold the loop or grow the server. A client that sends one request and closes
after the reply (the tutorial's) works as well.

A reply is charged against the memory budget before it is buffered: one larger than
``max_reply_bytes`` is answered with ``reply-too-large`` (the connection goes on), one the
budget cannot take with ``memory-budget`` (and the connection closes). A bad frame gets an error
reply, then the connection closes (the stream cannot be re-synchronised); the server logs one
line (the first few per kind and window; the rest as a count, see ``limits.WarningLimiter``).
Peer data quoted in replies and logs is clipped (``framing.clip``).

The frame deadline runs per frame, from when we start waiting for a frame's bytes, and stands
still while the server has paused reading this connection for back-pressure, since the peer
cannot send the rest then.
"""

from __future__ import annotations

import socket
import time

from lab import appproto, framing
from lab.appconn import NEED_DATA, Closed, ErrorReply, Reply, Request, ServerConnection, error_reply

from .base import Protocol, Transport
from .config import ServerConfig


class AppProtocol(Protocol):
    """One connection of the framed protocol: decode, answer in order, close on a bad frame."""

    name = "app"
    buffers = True
    refusal = error_reply("busy", "the server is at its connection limit; try again later.")
    hostname = socket.gethostname()

    def __init__(
        self,
        max_content_bytes: int = ServerConfig.max_content_bytes,
        frame_deadline_s: float = ServerConfig.frame_deadline_s,
        max_reply_bytes: int = ServerConfig.max_reply_bytes,
    ) -> None:
        self.app = ServerConnection(max_content_bytes)
        self.frame_deadline_s = frame_deadline_s
        self.max_reply_bytes = max_reply_bytes
        self.context: appproto.Context | None = None
        self.frame_started: float | None = None  # since when we wait for a frame's bytes
        self.paused_before = 0.0  # the transport's paused time then
        self.writing_paused = False  # the peer is not reading its replies
        self.finished = False  # a closing error was sent: nothing more to read or answer

    def connection_made(self, transport: Transport) -> None:
        super().connection_made(transport)
        local, peer = transport.local, transport.peer
        self.context = appproto.Context(self.hostname, local.ip, local.port, peer.ip, peer.port)

    def data_received(self, data: memoryview) -> None:
        self.app.receive_data(data)
        if self.frame_started is None:
            self._start_frame_clock()
        if not self.writing_paused:
            self.transport.request_work()

    def eof_received(self) -> None:
        self.app.receive_data(b"")
        if not self.app.in_progress:  # every request answered: nothing to queue for
            self.transport.close("peer closed")
        elif not self.writing_paused:
            self.transport.request_work()  # answer what is buffered, then close

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.transport.request_work()

    def work(self, until: float) -> bool:
        """Answer buffered requests in order until ``until`` (one at least), the write buffer
        is full, or the next one is incomplete."""
        transport = self.transport
        answered = 0
        while not self.writing_paused and not self.finished:
            try:
                event = self.app.next_event()
            except framing.RemoteProtocolError as exc:  # truncated at the end of stream, too
                self.reject(exc.code, str(exc))  # the peer may still read it (half-close)
                return False
            if event is NEED_DATA:
                break
            if isinstance(event, Closed):
                transport.close("peer closed")
                return False
            assert isinstance(event, Request)
            if not self._send(transport, self.answer(event)):
                return False
            answered += 1
            if time.perf_counter() >= until:
                break
        else:
            return False  # resume_writing asks again
        more = self.app.ready()
        if not self.app.in_progress:
            self.frame_started = None
        elif answered and not more:  # the next frame is now the one we wait for
            self._start_frame_clock()
        return more

    def answer(self, request: Request) -> Reply | ErrorReply:
        assert self.context is not None
        return appproto.answer(request, self.context)

    def _send(self, transport: Transport, event: Reply | ErrorReply) -> bool:
        """Buffer the reply if the limits allow; else say why. False if we are closing."""
        wire = self.app.send(event)
        if len(wire) > self.max_reply_bytes:
            wire = self.app.send(
                ErrorReply(
                    "reply-too-large",
                    f"the reply would be {len(wire)} "
                    f"bytes, over the limit of {self.max_reply_bytes}.",
                )
            )
        if not transport.write(wire):
            if transport.is_closing():  # the connection broke meanwhile
                return False
            transport.warn(
                "memory budget",
                "app conn=%d peer=%s: a reply of %d bytes does not fit the memory budget; closing",
                transport.conn_id,
                transport.peer,
                len(wire),
            )
            self._refuse_and_close(
                "memory-budget", "the server's buffers are full; try again later.", "memory budget"
            )
            return False
        if self.app.closing:  # an error after which the connection ends
            self.finished = True
            transport.close(f"error: {event.code}")  # type: ignore[union-attr]
            return False
        return True

    def _start_frame_clock(self) -> None:
        transport = self.transport
        self.frame_started, self.paused_before = transport.time(), transport.reading_paused_s()
        transport.check_by(self.frame_started + self.frame_deadline_s)  # when it may expire

    def in_exchange(self, now: float) -> bool:
        return self.app.in_progress

    def check_deadline(self, now: float) -> None:
        if self.frame_started is None or self.finished or self.app.ready():
            return  # nothing awaited from the peer (a complete request waits for us)
        paused = self.transport.reading_paused_s() - self.paused_before
        if now - self.frame_started - paused >= self.frame_deadline_s:
            self.reject(
                "frame-deadline",
                f"a message was started but not completed within {self.frame_deadline_s:g}s",
            )

    def buffered_bytes(self) -> int:
        return self.app.held_bytes

    def connection_lost(self, reason: str) -> None:
        self.app.clear()
        super().connection_lost(reason)

    def goodbye(self, reason: str) -> bytes:
        return error_reply(
            "memory-budget",
            "the server's buffers are full and this connection held the most; try again later.",
        )

    def reject(self, code: str, message: str) -> None:
        transport = self.transport
        transport.warn(
            "bad-frame",
            "app conn=%d bad frame from peer=%s: %s (%s); closing",
            transport.conn_id,
            transport.peer,
            code,
            message,
            code=code,
        )
        self._refuse_and_close(code, message, f"bad frame: {code}")

    def _refuse_and_close(self, code: str, message: str, reason: str) -> None:
        transport = self.transport
        self.finished, self.frame_started = True, None
        if transport.is_closing():
            return
        self.app.clear()  # nothing more will be read from it: free its buffer now
        if transport.write(self.app.send(ErrorReply(code, message))):
            transport.close(reason)
        else:  # not even a short error fits: just go
            transport.abort(reason)
