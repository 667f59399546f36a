"""Hostile: forks without end (a fork bomb) instead of serving. The kit's pids limit stops it."""

import os
import time

children = 0
while children < 10_000:
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
    except OSError:
        time.sleep(0.01)  # at the limit: try again, as a fork bomb does
