#!/usr/bin/env python3
"""`make bench`: the project's server beside its peers, measured in one run. The code is
``labtools.bench``; ``--help`` lists the options."""

from labtools.bench import run

if __name__ == "__main__":
    raise SystemExit(run())
