"""Listening sockets: a ``TcpListener`` admits peers and builds each one's protocol; a
``UdpListener`` is the ``DatagramTransport`` its protocol answers through.

A listener owns admission: it parses the peer's address once (``lab.netinfo.Peer``), asks the
loop whether the peer may connect (``EventLoop.admission`` counts what all listeners hold),
tells a refused peer so in its protocol's words (``refusal``), and builds the protocol with the
settings it was given. Accepting costs O(1) per peer and at most ACCEPT_BATCH peers a listener
per turn. Every socket is dual-stack where the bind address allows: one IPv6 socket with
``IPV6_V6ONLY=0``, so IPv4 peers appear as IPv4.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lab.netinfo import Peer, peer_of

from .base import DatagramProtocol, Protocol

if TYPE_CHECKING:
    from .config import ServerConfig
    from .loop import EventLoop

ACCEPT_BATCH = 64  # accepts per listener per turn, so a burst of clients is taken in one go
UDP_BATCH = 64  # datagrams per listener per turn
PAUSE_ON_EMFILE_S = 0.5  # out of file descriptors: stop accepting for a moment
UDP_PEERS_CACHED = 1024  # datagram sources whose parsed address is kept

log = logging.getLogger("server")


class TcpListener:
    """Accepts peers for ``protocol`` (a ``Protocol`` class, built with ``settings``)."""

    def __init__(
        self, loop: EventLoop, protocol: Callable[..., Protocol], port: int, **settings: Any
    ) -> None:
        self.loop = loop
        self.name: str = getattr(protocol, "name", "tcp")
        self.refusal: bytes = getattr(protocol, "refusal", b"")
        self.factory = functools.partial(protocol, **settings) if settings else protocol
        self.sock = listening_socket(loop.config, socket.SOCK_STREAM, port)
        self.port: int = self.sock.getsockname()[1]

    def on_ready(self, mask: int) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.loop.warnings.warn(
                        "cannot-accept",
                        self.loop.now,
                        "%s cannot accept: %s; pausing accepts for %.1fs",
                        self.name,
                        exc.strerror,
                        PAUSE_ON_EMFILE_S,
                    )
                    self.loop.pause_listener(self, PAUSE_ON_EMFILE_S)
                return  # anything else (e.g. the peer gave up before accept) is not ours to fix
            self.admit(sock, peer_of(addr, self.loop.config.ipv6_prefix_bits, keep=False))

    def admit(self, sock: socket.socket, peer: Peer) -> None:
        sock.setblocking(False)
        loop = self.loop
        refusal = loop.admission(peer)
        if refusal is not None:
            loop.refused[refusal] += 1
            with contextlib.suppress(OSError):
                sock.send(self.refusal)
            sock.close()
            loop.warnings.warn(
                f"refused ({refusal})",
                loop.now,
                "%s refused peer=%s: %s (%d connections; %d refused so far)",
                self.name,
                peer,
                refusal,
                len(loop.connections),
                sum(loop.refused.values()),
                extra={
                    "event": "refused",
                    "listener": self.name,
                    "peer": str(peer),
                    "reason": refusal,
                },
            )
            return
        configure_accepted(sock, loop.config.keepalive_idle_s)
        try:
            protocol = self.factory()
        except Exception as exc:  # the protocol's constructor: a bug, not the peer's doing
            loop.contain(self, f"building a protocol for peer={peer}", exc)
            sock.close()
            return
        loop.add(sock, peer, protocol)

    def describe(self) -> str:
        return f"{self.name} on {peer_of(self.sock.getsockname())}/tcp"


def configure_accepted(sock: socket.socket, keepalive_idle_s: int) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive_idle_s:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive_idle_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


class UdpListener:
    """A datagram socket whose datagrams go to ``protocol`` (built with ``settings``); it is the
    protocol's ``DatagramTransport``. Reads up to ``largest`` + 1 bytes, so that an oversized
    datagram is seen as such (the kernel cuts what does not fit)."""

    def __init__(
        self,
        loop: EventLoop,
        protocol: Callable[..., DatagramProtocol],
        port: int,
        largest: int,
        **settings: Any,
    ) -> None:
        self.loop = loop
        self.name: str = getattr(protocol, "name", "udp")
        self.sock = listening_socket(loop.config, socket.SOCK_DGRAM, port)
        self.port: int = self.sock.getsockname()[1]
        self.buffer = bytearray(largest + 1)
        self.view = memoryview(self.buffer)
        self.send_failed = 0
        # sockaddr -> parsed, a bounded table
        self._peers: OrderedDict[tuple[Any, ...], Peer] = OrderedDict()
        self.protocol = protocol(**settings)
        self.protocol.connection_made(self)

    # -- the DatagramTransport interface -----------------------------------------------------
    def time(self) -> float:
        return self.loop.now

    def sendto(self, data: bytes | memoryview, peer: Peer) -> bool:
        try:
            self.sock.sendto(data, peer.sockaddr)
        except OSError as exc:  # send buffer full, or the peer's route is gone
            self.send_failed += 1
            self.warn(
                f"{self.name} send",
                "%s could not send to peer=%s: %s (%d so far)",
                self.name,
                peer,
                exc.strerror,
                self.send_failed,
            )
            return False
        return True

    def warn(self, kind: str, msg: str, *args: object, **fields: object) -> None:
        extra = {"event": kind, "listener": self.name, **fields}
        self.loop.warnings.warn(kind, self.loop.now, msg, *args, extra=extra)

    # -- called by the loop -------------------------------------------------------------------
    def on_ready(self, mask: int) -> None:
        sock, view, protocol = self.sock, self.view, self.protocol
        for _ in range(UDP_BATCH):
            try:
                size, addr = sock.recvfrom_into(self.buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("%s recv failed: %s", self.name, exc)
                continue
            protocol.datagram_received(view[:size], self._peer(addr))

    def _peer(self, addr: tuple[Any, ...]) -> Peer:
        """The source, parsed once while it keeps sending (a bounded cache)."""
        peer = self._peers.get(addr)
        if peer is None:
            peer = self._peers[addr] = peer_of(addr, self.loop.config.ipv6_prefix_bits)
            if len(self._peers) > UDP_PEERS_CACHED:
                self._peers.popitem(last=False)
        return peer

    def describe(self) -> str:
        return f"{self.name} on {peer_of(self.sock.getsockname())}/udp"


def listening_socket(config: ServerConfig, kind: int, port: int) -> socket.socket:
    dual = config.bind in ("::", "") and socket.has_dualstack_ipv6()
    family = socket.AF_INET6 if (dual or ":" in config.bind) else socket.AF_INET
    host = "::" if dual else config.bind
    if kind == socket.SOCK_STREAM:
        sock = socket.create_server(
            (host, port), family=family, backlog=config.backlog, dualstack_ipv6=dual
        )
    else:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if dual:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    sock.setblocking(False)
    return sock
