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

# Events taken from the kernel a turn, at most: epoll is level-triggered, so the rest come in
# the next turn; and its buffer (12 bytes an event) is allocated on every call.
MAX_EVENTS = 1024
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
    """``select.epoll`` with a dict of fd -> handler, and the fds that want more than reading
    (few: those with bytes waiting to be sent) in a second dict of their events. An idle
    connection costs one dict entry here, not an entry and a tuple."""

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
        self._registered: dict[int, Any] = {}
        self._events: dict[int, int] = {}  # fd -> events, for those not EVENT_READ alone

    def _remember(self, fd: int, events: int) -> None:
        if events == EVENT_READ:
            self._events.pop(fd, None)
        else:
            self._events[fd] = events

    def register(self, sock: socket.socket, events: int, handler: Any) -> None:
        fd = sock.fileno()
        if fd in self._registered:
            raise KeyError(f"{sock!r} is already registered")
        self._epoll.register(fd, self._TO_EPOLL[events])
        self._registered[fd] = handler
        self._remember(fd, events)

    def modify(self, sock: socket.socket, events: int, handler: Any) -> None:
        fd = sock.fileno()
        if fd not in self._registered:
            raise KeyError(f"{sock!r} is not registered")
        self._epoll.modify(fd, self._TO_EPOLL[events])
        self._registered[fd] = handler
        self._remember(fd, events)

    def unregister(self, sock: socket.socket) -> None:
        """KeyError if ``sock`` is not registered."""
        fd = sock.fileno()
        del self._registered[fd]
        self._events.pop(fd, None)
        self._epoll.unregister(fd)

    def select(self, timeout: float) -> list[tuple[Any, int]]:
        registered, wanted = self._registered, self._events
        ready = []
        # As selectors does: error and hang-up events wake both directions, each handler
        # sees only those it asked for.
        for fd, event in self._epoll.poll(timeout, max(1, min(len(registered), MAX_EVENTS))):
            handler = registered.get(fd)
            if handler is not None:
                mask = (
                    (EVENT_WRITE if event & ~select.EPOLLIN else 0)
                    | (EVENT_READ if event & ~select.EPOLLOUT else 0)
                ) & wanted.get(fd, EVENT_READ)
                if mask:
                    ready.append((handler, mask))
        return ready


Poller = EpollPoller if hasattr(select, "epoll") else SelectorsPoller
