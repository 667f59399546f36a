"""``python -m labsoak``: the same as ``make soak`` (``--help`` lists the options)."""

import signal
import sys

from .run import main

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
