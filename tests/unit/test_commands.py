"""The host commands that bring up stacks tear down on SIGTERM (a CI cancelling the job) as on
Ctrl-C, whichever way they are started: scripts/*.py go through ``labtools.command.run`` as the
``python -m`` forms do (the scripts once called ``main()`` directly, and a cancelled
`make bench`, `make capture` or `make cluster` was killed outright)."""

from __future__ import annotations

import importlib
import runpy
import signal

import pytest
from labstack import ROOT

SCRIPTS = {"bench": "bench", "capture": "capture", "cluster": "cluster", "screenshots": "screens"}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_the_script_turns_sigterm_into_an_interrupt(
    script: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = []

    def main() -> int:
        handlers.append(signal.getsignal(signal.SIGTERM))
        return 7

    module = importlib.import_module(f"labtools.{SCRIPTS[script]}")
    monkeypatch.setattr(module, "main", main)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as ended:
            runpy.run_path(str(ROOT / "scripts" / f"{script}.py"), run_name="__main__")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ended.value.code == 7
    assert handlers == [signal.default_int_handler]
