"""The chaos soak (``make soak``): a generator of operations, a nemesis that injects overlapping
faults on a seeded schedule, and a checker that accounts for every operation afterwards."""
