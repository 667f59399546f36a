"""The server's loop in this process: its listeners on loopback, turned by a thread of the test's,
so that a test can look inside (its connections, its budget, what is still alive) while real
sockets talk to it. No subprocess and no Docker.

    with InProcessServer(memory_budget_bytes=2 << 20) as server:
        sock = server.connect("app")
        ...
        server.wait_until(lambda: not server.loop.connections)
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any

from lab import registry
from labserver.base import Protocol
from labserver.cli import build
from labserver.config import ServerConfig
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

TIMEOUT_S = 5.0


class InProcessServer:
    """An ``EventLoop`` serving every listener of the registry on 127.0.0.1 (ephemeral ports),
    built as ``labserver.cli`` builds it, with weak references to every transport and
    protocol it built (``alive()``)."""

    def __init__(self, **settings: Any) -> None:
        self.config = dataclasses.replace(
            ServerConfig(), bind="127.0.0.1", quiet_loopback=True, **settings
        )
        self.made: list[weakref.ref] = []
        self.loop = build(
            self.config,
            {row.name: 0 for row in registry.LISTENERS},
            lambda row: self._tracked(registry.resolve(row.protocol)),
        )
        self.ports = {listener.name: listener.port for listener in self.loop.listeners}
        original_add = self.loop.add

        def add(sock: socket.socket, peer: Any, protocol: Any) -> Any:
            transport = original_add(sock, peer, protocol)
            self.made.append(weakref.ref(transport))
            return transport

        self.loop.add = add  # type: ignore[method-assign]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors: list[BaseException] = []

    def _tracked(self, cls: type) -> Callable[..., Any]:
        """``cls``, or for a TCP protocol a factory that remembers what it built."""
        if not issubclass(cls, Protocol):
            return cls  # a datagram protocol: one for the listener's life

        def made(**settings: Any) -> Any:
            protocol = cls(**settings)
            self.made.append(weakref.ref(protocol))
            if hasattr(protocol, "app"):  # the app's connection object and its decoder
                self.made += [weakref.ref(protocol.app), weakref.ref(protocol.app._decoder)]
            return protocol

        made.name = cls.name  # type: ignore[attr-defined]
        made.refusal = cls.refusal  # type: ignore[attr-defined]
        return made

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and self.loop.run_once(timeout=0.02):
                pass
        except BaseException as exc:  # a test must see it, not a silent thread
            self.errors.append(exc)

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(TIMEOUT_S)
            assert not self._thread.is_alive(), "the loop did not stop"
        for transport in list(self.loop.connections.values()):
            transport.close_now("test over")
        for listener in self.loop.listeners:
            listener.sock.close()
        assert not self.errors, self.errors

    def connect(self, listener: str) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.ports[listener]), timeout=TIMEOUT_S)

    def alive(self) -> list[object]:
        """Everything the loop built that still exists."""
        return [obj for ref in self.made if (obj := ref()) is not None]

    def wait_until(self, condition: Callable[[], object], within_s: float = TIMEOUT_S) -> None:
        """Until ``condition()`` is true (its docstring says what it waits for)."""

        def check() -> None:
            if not condition():
                raise AssertionError(f"not within {within_s}s: {condition.__doc__ or condition}")

        Retrying(
            stop=stop_after_delay(within_s),
            wait=wait_fixed(0.01),
            retry=retry_if_exception_type(AssertionError),
            reraise=True,
        )(check)
