"""The framed application protocol's server side: bytes to requests (``lab.framing``), requests
to answers (``lab.appproto``), answers back in order.

A connection carries any number of requests; requests sent back to back (pipelined) are answered
in order, at most ``TURN_REQUESTS`` per loop turn (the rest in the next turn, so that one read
full of small requests cannot hold the loop). A client that sends one request and closes after
the reply (the tutorial's) works as well.

A bad frame gets an error reply, then the connection closes (the stream cannot be
re-synchronised); the server logs one line (the first few per kind and window; the rest as a
count, see ``limits.WarningLimiter``). Peer data quoted in replies and logs is clipped
(``framing.clip``), so neither is larger than the request.

The frame deadline runs per frame, from a frame's first byte (for pipelined frames: from the read
that completed the one before), and stands still while the server has paused reading this
connection for back-pressure, since the peer cannot send the rest then.
"""

from __future__ import annotations

import socket

from lab import appproto, framing
from lab.netinfo import endpoint, plain_ip

from .config import ServerConfig
from .connection import Connection, Protocol

TURN_REQUESTS = 32  # requests answered per loop turn; more pipelined ones wait for the next turn


class AppProtocol(Protocol):
    """One connection of the framed protocol: decode, answer in order, close on a bad frame."""

    name = "app"
    refusal = appproto.error_reply("busy", "the server is at its connection limit; try again "
                                           "later.")
    hostname = socket.gethostname()

    def __init__(self, conn: Connection,
                 max_content_bytes: int = ServerConfig.max_content_bytes,
                 frame_deadline_s: float = ServerConfig.frame_deadline_s) -> None:
        super().__init__(conn)
        self.decoder = framing.MessageDecoder(max_content_bytes)
        self.frame_deadline_s = frame_deadline_s
        self.context = appproto.Context(self.hostname, plain_ip(conn.local[0]), conn.local[1],
                                        plain_ip(conn.peer[0]), conn.peer[1])
        self.frame_started: float | None = None  # when the frame in progress began
        self.paused_before = 0.0  # the connection's paused time when it began
        self.more_scheduled = False  # complete requests wait for the next turn
        self.eof = False  # the peer has closed its side

    def data_received(self, data: memoryview) -> None:
        self.decoder.feed(data)
        if not self.more_scheduled:
            self.answer_some()

    def answer_some(self) -> None:
        """Answer up to TURN_REQUESTS complete requests; schedule the rest for the next turn."""
        self.more_scheduled = False
        conn = self.conn
        answered = 0
        try:
            for message in self.decoder.messages():
                conn.write(self.answer(message))
                answered += 1
                if answered == TURN_REQUESTS:
                    self.more_scheduled = True
                    conn.call_soon(self.answer_some)
                    break
        except framing.RemoteProtocolError as exc:
            self.reject(exc.code, str(exc))
            return
        if self.more_scheduled:
            return
        if self.eof:
            self._close_at_eof()
        elif not self.decoder.in_progress:
            self.frame_started = None
        elif answered or self.frame_started is None:  # a new frame began in this read
            now = conn.now
            self.frame_started, self.paused_before = now, conn.reading_paused_s(now)

    def answer(self, message: framing.Message) -> bytes:
        return appproto.answer(message, self.context)

    def eof_received(self) -> None:
        self.eof = True
        if not self.more_scheduled:  # else answer_some gets here when it is done
            self._close_at_eof()

    def _close_at_eof(self) -> None:
        try:
            self.decoder.receive_eof()
        except framing.TruncatedMessage as exc:
            self.reject(exc.code, str(exc))  # the peer may still read our reply (half-close)
            return
        self.conn.close_when_flushed("peer closed")

    def between_exchanges(self, now: float) -> bool:
        return not self.decoder.in_progress and not self.more_scheduled

    def check_deadline(self, now: float) -> None:
        if self.frame_started is None:
            return
        paused = self.conn.reading_paused_s(now) - self.paused_before
        if now - self.frame_started - paused >= self.frame_deadline_s:
            self.reject("frame-deadline", f"a message was started but not completed within "
                                          f"{self.frame_deadline_s:g}s")

    def buffered_bytes(self) -> int:
        return self.decoder.buffered

    def release(self) -> None:
        self.decoder.clear()

    def goodbye(self, reason: str) -> bytes:
        return appproto.error_reply("memory-budget", "the server's buffers are full and this "
                                    "connection held the most; try again later.")

    def reject(self, code: str, message: str) -> None:
        conn = self.conn
        conn.warn("bad-frame", "app conn=%d bad frame from peer=%s: %s (%s); closing",
                  conn.conn_id, endpoint(conn.peer), code, message)
        self.decoder.clear()  # nothing more will be read from it: free its buffer now
        conn.write(appproto.error_reply(code, message))
        conn.close_when_flushed(f"bad frame: {code}")
