"""Listening sockets: a ``TcpListener`` admits peers and builds each one's ``Connection``; a
``UdpListener`` hands each datagram to its ``DatagramProtocol``.

A listener owns admission: it decides whether a peer may connect (``EventLoop.admission`` counts
what all listeners hold), tells a refused peer so in its protocol's words (``refusal``), and
builds the protocol with the settings it was given. Every socket is dual-stack where the bind
address allows: one IPv6 socket with ``IPV6_V6ONLY=0``, so IPv4 peers appear as IPv4.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import socket
from typing import TYPE_CHECKING, Any

from lab.netinfo import endpoint, plain_ip

from .connection import Connection, Protocol

if TYPE_CHECKING:
    from .config import ServerConfig
    from .loop import EventLoop

ACCEPT_BATCH = 64  # accepts per readiness event, so a burst of clients is taken in one go
UDP_BATCH = 64  # datagrams per readiness event
PAUSE_ON_EMFILE_S = 0.5  # out of file descriptors: stop accepting for a moment

log = logging.getLogger("server")


class TcpListener:
    """Accepts peers for ``protocol`` (a ``Protocol`` class, built with ``settings``)."""

    def __init__(self, loop: EventLoop, protocol: type[Protocol], port: int,
                 **settings: Any) -> None:
        self.loop = loop
        self.name = protocol.name
        self.refusal = protocol.refusal
        self.factory = functools.partial(protocol, **settings) if settings else protocol
        self.sock = listening_socket(loop.config, socket.SOCK_STREAM, port)

    def on_ready(self, mask: int) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.loop.warnings.warn(
                        "cannot-accept", self.loop.now, "%s cannot accept: %s; pausing accepts "
                        "for %.1fs", self.name, exc.strerror, PAUSE_ON_EMFILE_S)
                    self.loop.pause_listener(self, PAUSE_ON_EMFILE_S)
                return  # anything else (e.g. the peer gave up before accept) is not ours to fix
            self.admit(sock, peer)

    def admit(self, sock: socket.socket, peer: tuple) -> None:
        sock.setblocking(False)
        loop = self.loop
        refusal = loop.admission(plain_ip(peer[0]))
        if refusal is not None:
            loop.refused[refusal] += 1
            with contextlib.suppress(OSError):
                sock.send(self.refusal)
            sock.close()
            loop.warnings.warn(f"refused ({refusal})", loop.now,
                               "%s refused peer=%s: %s (%d connections; %d refused so far)",
                               self.name, endpoint(peer), refusal, len(loop.connections),
                               sum(loop.refused.values()))
            return
        configure_accepted(sock, loop.config.keepalive_idle_s)
        loop.conn_ids += 1
        try:
            conn = Connection(loop, sock, peer, loop.conn_ids, self.factory,
                              loop.config.write_buffer_bytes)
        except Exception as exc:  # the protocol's constructor: a bug, not the peer's doing
            loop.contain(self, f"building a protocol for peer={endpoint(peer)}", exc)
            sock.close()
            return
        loop.add(conn)

    def describe(self) -> str:
        return f"{self.name} on {endpoint(self.sock.getsockname())}/tcp"


def configure_accepted(sock: socket.socket, keepalive_idle_s: int) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if keepalive_idle_s:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive_idle_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


class DatagramProtocol:
    """What a UDP listener does with each datagram. ``datagram_received(data, peer)`` may
    answer with ``self.sendto(data, peer)``; ``data`` is valid only during the call. ``stats()``
    goes into the server's closing summary."""

    name = "udp"

    def __init__(self, listener: UdpListener) -> None:
        self.listener = listener

    def datagram_received(self, data: memoryview, peer: tuple) -> None:
        raise NotImplementedError

    def sendto(self, data: bytes | memoryview, peer: tuple) -> bool:
        """Send a datagram; False (and counted) if the kernel would not take it."""
        try:
            self.listener.sock.sendto(data, peer)
        except OSError as exc:  # send buffer full, or the peer's route is gone
            self.listener.send_failed += 1
            self.listener.loop.warnings.warn(
                f"{self.name} send", self.listener.loop.now, "%s could not send to peer=%s: "
                "%s (%d so far)", self.name, endpoint(peer), exc.strerror,
                self.listener.send_failed)
            return False
        return True

    def stats(self) -> dict[str, Any]:
        return {}


class UdpListener:
    """A datagram socket whose datagrams go to ``protocol`` (built with ``settings``). Reads up
    to ``largest`` + 1 bytes, so that an oversized datagram is seen as such (the kernel cuts
    what does not fit)."""

    def __init__(self, loop: EventLoop, protocol: type[DatagramProtocol], port: int,
                 largest: int, **settings: Any) -> None:
        self.loop = loop
        self.name = protocol.name
        self.sock = listening_socket(loop.config, socket.SOCK_DGRAM, port)
        self.port = self.sock.getsockname()[1]
        self.buffer = bytearray(largest + 1)
        self.view = memoryview(self.buffer)
        self.send_failed = 0
        self.protocol = protocol(self, **settings)

    def on_ready(self, mask: int) -> None:
        sock, view, protocol = self.sock, self.view, self.protocol
        for _ in range(UDP_BATCH):
            try:
                size, peer = sock.recvfrom_into(self.buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("%s recv failed: %s", self.name, exc)
                continue
            protocol.datagram_received(view[:size], peer)

    def describe(self) -> str:
        return f"{self.name} on {endpoint(self.sock.getsockname())}/udp"


def listening_socket(config: ServerConfig, kind: int, port: int) -> socket.socket:
    dual = config.bind in ("::", "") and socket.has_dualstack_ipv6()
    family = socket.AF_INET6 if (dual or ":" in config.bind) else socket.AF_INET
    host = "::" if dual else config.bind
    if kind == socket.SOCK_STREAM:
        sock = socket.create_server((host, port), family=family, backlog=config.backlog,
                                    dualstack_ipv6=dual)
    else:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if dual:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    sock.setblocking(False)
    return sock
