"""Following a worker container's history as it writes it, and running the workers under the
nemesis (the same for the compose stack and the cluster)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

import docker.errors
from docker.models.containers import Container

if TYPE_CHECKING:
    from .nemesis import Nemesis


def stream_logs(container: Container, sink: list[str]) -> threading.Thread:
    """Follow a worker's stdout as it writes (no line is lost to the log's rotation)."""

    def follow() -> None:
        buffer = b""
        with contextlib.suppress(Exception):
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=False):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                sink.extend(line.decode(errors="replace") for line in lines)
        if buffer:
            sink.append(buffer.decode(errors="replace"))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


def run_under_nemesis(
    nemesis: Nemesis, workers: list[Container], lines: list[str], within_s: float
) -> None:
    """Follow the workers' output into ``lines``, start the nemesis, and wait for the workers
    (``within_s`` each); then, whatever happened (Ctrl-C included), heal, stop any worker still
    running, and wait for each follower to end with its container's output."""
    followers = [stream_logs(worker, lines) for worker in workers]
    try:
        nemesis.run(time.monotonic())
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.wait(timeout=within_s)
    finally:
        nemesis.heal()
        for worker in workers:  # a worker still running after its grace: stopped
            with contextlib.suppress(docker.errors.APIError):
                worker.kill()
        for follower in followers:
            follower.join(10)
