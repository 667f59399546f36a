"""Readiness for the loop: ``selectors``' register / modify / unregister / select, with the
handler (the listener or connection) as each socket's data.

On Linux it calls ``select.epoll`` directly: ``select()`` returns ``(handler, mask)`` pairs
from one dict lookup per event, where ``selectors`` builds a ``SelectorKey`` lookup and a
tuple per event on top of the same ``epoll_wait`` (about a tenth of the loop's own time per
request, profiled). Elsewhere it is ``selectors.DefaultSelector`` behind the same four calls.
The masks are ``selectors.EVENT_READ`` and ``EVENT_WRITE``, as before.
"""

from __future__ import annotations

import select
import selectors
import socket
from typing import Any

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class SelectorsPoller:
    """The portable one: ``selectors.DefaultSelector``."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def register(self, sock: socket.socket, events: int, handler: Any) -> None:
        self._selector.register(sock, events, handler)

    def modify(self, sock: socket.socket, events: int, handler: Any) -> None:
        self._selector.modify(sock, events, handler)

    def unregister(self, sock: socket.socket) -> None:
        """KeyError if ``sock`` is not registered."""
        self._selector.unregister(sock)

    def select(self, timeout: float) -> list[tuple[Any, int]]:
        return [(key.data, mask) for key, mask in self._selector.select(timeout)]


class EpollPoller:
    """``select.epoll`` with a dict of fd -> (handler, events)."""

    _TO_EPOLL = (
        {
            EVENT_READ: select.EPOLLIN,
            EVENT_WRITE: select.EPOLLOUT,
            EVENT_READ | EVENT_WRITE: select.EPOLLIN | select.EPOLLOUT,
        }
        if hasattr(select, "epoll")
        else {}
    )

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._registered: dict[int, tuple[Any, int]] = {}

    def register(self, sock: socket.socket, events: int, handler: Any) -> None:
        fd = sock.fileno()
        if fd in self._registered:
            raise KeyError(f"{sock!r} is already registered")
        self._epoll.register(fd, self._TO_EPOLL[events])
        self._registered[fd] = (handler, events)

    def modify(self, sock: socket.socket, events: int, handler: Any) -> None:
        fd = sock.fileno()
        if fd not in self._registered:
            raise KeyError(f"{sock!r} is not registered")
        self._epoll.modify(fd, self._TO_EPOLL[events])
        self._registered[fd] = (handler, events)

    def unregister(self, sock: socket.socket) -> None:
        """KeyError if ``sock`` is not registered."""
        fd = sock.fileno()
        del self._registered[fd]
        self._epoll.unregister(fd)

    def select(self, timeout: float) -> list[tuple[Any, int]]:
        registered = self._registered
        ready = []
        # As selectors does: error and hang-up events wake both directions, each handler
        # sees only those it asked for.
        for fd, event in self._epoll.poll(timeout, max(1, len(registered))):
            entry = registered.get(fd)
            if entry is not None:
                mask = (
                    (EVENT_WRITE if event & ~select.EPOLLIN else 0)
                    | (EVENT_READ if event & ~select.EPOLLOUT else 0)
                ) & entry[1]
                if mask:
                    ready.append((entry[0], mask))
        return ready


Poller = EpollPoller if hasattr(select, "epoll") else SelectorsPoller
