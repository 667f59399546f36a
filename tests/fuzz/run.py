"""Coverage-guided fuzzing with atheris (libFuzzer): ``python tests/fuzz/run.py TARGET [ARGS]``.

TARGET is ``codec`` (the framing decoder and encoder), ``app`` (the server's application
protocol, bytes in, replies out, through the code the server runs) or ``client`` (a server's
bytes as the client reads and checks them). ARGS go to libFuzzer, e.g.
``-max_total_time=60``. ``make fuzz`` runs both: new interesting inputs go to ``.fuzz/TARGET``
(git-ignored), crashes to ``.fuzz/crashes/``; the seeds in ``tests/fuzz/seeds/TARGET`` are read
too. Copy an input worth keeping into the seeds: the suite replays every seed. Every input also
goes through the cost oracle (``targets.with_cost_oracle``): one that costs too much CPU per
byte is saved like a crash.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (ROOT / "tests", HERE):  # the tests' helpers; the packages are installed
    sys.path.insert(0, str(path))

with atheris.instrument_imports(include=["lab", "labserver", "labclient", "inmemory", "targets"]):
    import targets


def main() -> None:
    name, args = sys.argv[1], sys.argv[2:]
    target = targets.with_cost_oracle(targets.TARGETS[name])
    logging.disable(logging.CRITICAL)  # the server's warnings, once per input, are noise here
    atheris.Setup([sys.argv[0], *args], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
