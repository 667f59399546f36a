"""The transport a protocol sees is the same interface everywhere: the loop's ``TcpTransport``
and the tests' ``MemoryTransport`` both implement ``labserver.base.Transport`` (every member,
with the same parameters), and ``UdpListener`` implements ``DatagramTransport``. A protocol
tested in memory is then tested against what the server gives it."""

from __future__ import annotations

import inspect

import pytest
from inmemory import MemoryTransport
from labserver.base import DatagramTransport, Transport
from labserver.listeners import UdpListener
from labserver.transport import TcpTransport


def members(interface: type) -> dict[str, inspect.Signature | None]:
    """The interface's methods (with their signatures) and attributes (None)."""
    found: dict[str, inspect.Signature | None] = dict.fromkeys(
        getattr(interface, "__annotations__", {})
    )
    for name, value in vars(interface).items():
        if callable(value) and not name.startswith("_"):
            found[name] = inspect.signature(value)
    return found


@pytest.mark.parametrize(
    ("interface", "implementation"),
    [
        (Transport, TcpTransport),
        (Transport, MemoryTransport),
        (DatagramTransport, UdpListener),
    ],
    ids=["TcpTransport", "MemoryTransport", "UdpListener"],
)
def test_implementation_has_every_member_with_the_same_parameters(
    interface: type, implementation: type
) -> None:
    wanted = members(interface)
    assert wanted, "the interface lists nothing"
    for name, signature in wanted.items():
        if signature is None:  # an attribute: set in __init__, or a property or slot
            source = inspect.getsource(implementation)
            assert f"self.{name}" in source or hasattr(implementation, name), name
            continue
        method = getattr(implementation, name, None)
        assert callable(method), f"{implementation.__name__} has no {name}()"
        assert list(inspect.signature(method).parameters) == list(signature.parameters), name
