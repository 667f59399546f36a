"""The loop's poller: the epoll one behaves like the selectors one it replaces, call for call."""

from __future__ import annotations

import select
import socket

import pytest
from labserver.poller import EVENT_READ, EVENT_WRITE, EpollPoller, SelectorsPoller

POLLERS = [SelectorsPoller] + ([EpollPoller] if hasattr(select, "epoll") else [])


@pytest.fixture(params=POLLERS, ids=lambda cls: cls.__name__)
def poller(request: pytest.FixtureRequest):
    return request.param()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.settimeout(1.0)
    b.settimeout(1.0)
    yield a, b
    a.close()
    b.close()


def test_reports_each_handler_with_only_the_events_it_asked_for(poller, pair) -> None:
    a, b = pair
    poller.register(a, EVENT_READ, "handler-a")
    assert poller.select(0) == []  # nothing to read yet
    b.sendall(b"x")
    assert poller.select(1.0) == [("handler-a", EVENT_READ)]
    poller.modify(a, EVENT_READ | EVENT_WRITE, "handler-a2")
    assert poller.select(1.0) == [("handler-a2", EVENT_READ | EVENT_WRITE)]
    poller.modify(a, EVENT_WRITE, "handler-a3")
    assert poller.select(1.0) == [("handler-a3", EVENT_WRITE)]
    poller.unregister(a)
    assert poller.select(0) == []


def test_a_hang_up_wakes_a_reader(poller, pair) -> None:
    a, b = pair
    poller.register(a, EVENT_READ, "reader")
    b.close()
    assert poller.select(1.0) == [("reader", EVENT_READ)]
    assert a.recv(1) == b""


def test_misuse_raises_key_error_like_selectors(poller, pair) -> None:
    a, _ = pair
    with pytest.raises(KeyError):
        poller.unregister(a)
    with pytest.raises(KeyError):
        poller.modify(a, EVENT_READ, None)
    poller.register(a, EVENT_READ, None)
    with pytest.raises(KeyError):
        poller.register(a, EVENT_READ, None)
    poller.unregister(a)
    with pytest.raises(KeyError):
        poller.unregister(a)


def test_many_ready_sockets_come_back_in_one_call(poller) -> None:
    pairs = [socket.socketpair() for _ in range(50)]
    try:
        for i, (a, b) in enumerate(pairs):
            poller.register(a, EVENT_READ, i)
            b.sendall(b"x")
        assert sorted(handler for handler, _ in poller.select(1.0)) == list(range(50))
    finally:
        for a, b in pairs:
            a.close()
            b.close()
