#!/usr/bin/env python3
"""`make capture`: the demo under tcpdump, saved for Wireshark and decoded. The code is
``labtools.capture``; ``--help`` lists the options."""

from labtools.capture import main

if __name__ == "__main__":
    raise SystemExit(main())
