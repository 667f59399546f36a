"""The framed application protocol's server side (wire format: ``lab.framing``).

A connection carries any number of requests; requests sent back to back (pipelined) are answered
in order, since one connection's bytes are handled in arrival order by one loop. A client that
sends one request and closes after the reply (the tutorial's) works as well.

Requests and replies (text/json)::

    {"action": "search",  "value": "ring"}   -> {"result": "<entry>"} or 'No match for "<value>".'
    {"action": "echo",    "value": <any>}    -> {"result": <the value>}
    {"action": "reverse", "value": "abc"}    -> {"result": "cba"}
    {"action": "whoami"}                     -> {"result": {"server_hostname", "server_address",
                                                 "server_port", "client_address", "client_port"}}
    anything else  -> {"result": 'Error: invalid action "<action>".', "error": {...}}

A binary request (any other content type) gets the tutorial's binary reply:
``b"First 10 bytes of request: " + content[:10]`` as ``binary/custom-server-binary-type``.

A bad frame gets an error reply, ``{"result": "Error: <message>", "error": {"code", "message"}}``,
then the connection closes (the stream cannot be re-synchronised); the server logs one line (the
first few per kind and window; the rest as a count, see ``limits.WarningLimiter``). Peer data
quoted in replies and logs is clipped (``framing.clip``), so neither is larger than the request.

The frame deadline runs per frame, from a frame's first byte (for pipelined frames: from the read
that completed the one before), and stands still while the server has paused reading this
connection for back-pressure, since the peer cannot send the rest then.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from lab import framing
from lab.netinfo import endpoint, plain_ip

from .core import Protocol

log = logging.getLogger("server")
TURN_REQUESTS = 32  # requests answered per loop turn; more pipelined ones wait for the next turn

SEARCH_TABLE = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
    "socket": "An endpoint for sending or receiving data across a network. \U0001f50c",
    "tcp": "A reliable, ordered byte stream. \U0001f4e6",
    "udp": "Datagrams: fast, unordered, and they may be lost. \U0001f4e8",
}
BINARY_REPLY_TYPE = "binary/custom-server-binary-type"
BINARY_REPLY_PREFIX = b"First 10 bytes of request: "


def error_reply(code: str, message: str) -> bytes:
    """An error as a text/json reply the tutorial's client prints sensibly (``result``)."""
    return framing.encode_json({"result": f"Error: {message}",
                                "error": {"code": code, "message": message}})


class AppProtocol(Protocol):
    """One connection of the framed protocol: decode, answer in order, close on a bad frame."""

    name = "app"
    refusal = error_reply("busy", "the server is at its connection limit; try again later.")
    hostname = socket.gethostname()

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        config = conn.loop.config
        self.decoder = framing.MessageDecoder(config.max_content_bytes)
        self.frame_deadline_s = config.frame_deadline_s
        self.frame_started: float | None = None  # when the frame in progress began
        self.paused_before = 0.0  # the connection's paused time when it began
        self.more_scheduled = False  # complete requests wait for the next turn
        self.eof = False  # the peer has closed its side

    def data_received(self, data: memoryview) -> None:
        self.decoder.feed(data)
        if not self.more_scheduled:
            self.answer_some()

    def answer_some(self) -> None:
        """Answer up to TURN_REQUESTS complete requests; schedule the rest for the next turn,
        so that one read full of small pipelined requests cannot hold the loop."""
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
            now = conn.loop.now
            self.frame_started, self.paused_before = now, conn.reading_paused_s(now)

    def buffered_bytes(self) -> int:
        return self.decoder.buffered

    def release(self) -> None:
        self.decoder.clear()

    def goodbye(self, reason: str) -> bytes:
        return error_reply("memory-budget", "the server's buffers are full and this connection "
                           "held the most; try again later.")

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

    def reject(self, code: str, message: str) -> None:
        conn = self.conn
        conn.loop.warnings.warn("bad-frame", conn.loop.now,
                                "app conn=%d bad frame from peer=%s: %s (%s); closing",
                                conn.conn_id, endpoint(conn.peer), code, message)
        self.decoder.clear()  # nothing more will be read from it: free its buffer now
        conn.write(error_reply(code, message))
        conn.close_when_flushed(f"bad frame: {code}")

    # -- the application ------------------------------------------------------------------
    def answer(self, message: framing.Message) -> bytes:
        if not message.is_json:
            return framing.encode_message(BINARY_REPLY_PREFIX + message.content[:10],
                                          BINARY_REPLY_TYPE, framing.BINARY_ENCODING)
        request = message.value
        action, value = request.get("action"), request.get("value")
        if action == "search":
            result: Any = SEARCH_TABLE.get(value) if isinstance(value, str) else None
            return self._result(result or f'No match for "{framing.shown(value)}".', message)
        if action == "echo":
            return self._result(value, message)
        if action == "reverse":
            if not isinstance(value, str):
                return error_reply("bad-value", "reverse needs a string value.")
            return self._result(value[::-1], message)
        if action == "whoami":
            conn = self.conn
            return self._result({
                "server_hostname": self.hostname,
                "server_address": plain_ip(conn.local[0]), "server_port": conn.local[1],
                "client_address": plain_ip(conn.peer[0]), "client_port": conn.peer[1],
            }, message)
        return error_reply("unknown-action", f'invalid action "{framing.shown(action)}".')

    @staticmethod
    def _result(result: Any, request: framing.Message) -> bytes:
        # In the encoding the request used, as the tutorial's peers expect (the codec accepted
        # it, so it is on the allow-list; what it cannot carry goes as JSON escapes).
        return framing.encode_json({"result": result}, request.content_encoding)

