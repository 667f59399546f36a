#!/usr/bin/env python3
"""`make screenshots`: the pictures in the README and docs, made by the code that draws them.
The code is ``labtools.screens``."""

from labtools.command import run
from labtools.screens import main

if __name__ == "__main__":
    raise SystemExit(run(main))
