"""Hostile: a client that never exits, whatever happens. The kit stops it at its time limit."""

import time

while True:
    time.sleep(1)
