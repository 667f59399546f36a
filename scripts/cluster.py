#!/usr/bin/env python3
"""`make cluster`: the demo across three Docker hosts of a swarm, then torn down. The code is
``labtools.cluster``; ``--help`` lists the options."""

from labtools.cluster import main
from labtools.command import run

if __name__ == "__main__":
    raise SystemExit(run(main))
