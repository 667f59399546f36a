#!/usr/bin/env python3
"""`make capture`: the demo under tcpdump, saved for Wireshark and decoded. The code is
``labtools.capture``; ``--help`` lists the options."""

from labtools.capture import main
from labtools.command import run

if __name__ == "__main__":
    raise SystemExit(run(main))
