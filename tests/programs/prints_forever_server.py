"""Hostile: prints without end. The kit reads a bounded tail of its output, never all of it."""

import sys

line = "spam " * 200 + "\n"
while True:
    sys.stdout.write(line)
