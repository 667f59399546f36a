"""Hostile: takes memory without end instead of serving. The kit's memory limit stops it."""

hoard = []
while True:
    hoard.append(bytearray(16 << 20))  # 16 MiB at a time, touched
    hoard[-1][::4096] = b"x" * len(hoard[-1][::4096])
