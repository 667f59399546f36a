"""The lab's stacks as Python objects: bring one up, find its containers, start clients beside
it, inject faults, read its logs, and leave nothing behind. Used by the test suite, the benchmark
and the cluster work; it imports nothing from ``tests/``.

``ComposeStack`` is the three jobs together: ``stack.Stack`` (lifecycle, lookups, waiting, logs),
``clients.OneOffClients`` (containers beside the stack) and ``faults.Faults``.
"""

from __future__ import annotations

from .clients import ClientResult, ClientRun, OneOffClients
from .faults import Faults
from .stack import ROOT, NotYet, Stack, StackError, wait_for


class ComposeStack(Faults, OneOffClients):
    """A lab stack with everything a test or a tool does to it."""


__all__ = [
    "ROOT",
    "ClientResult",
    "ClientRun",
    "ComposeStack",
    "NotYet",
    "Stack",
    "StackError",
    "wait_for",
]
