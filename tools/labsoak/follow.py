"""Following a worker container's history as it writes it."""

from __future__ import annotations

import contextlib
import threading

from docker.models.containers import Container


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
