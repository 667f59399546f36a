"""scripts/cpu_share.py's arithmetic: the busy timeline and what is left for "the rest"."""

from __future__ import annotations

import runpy

from labstack import ROOT

script = runpy.run_path(str(ROOT / "scripts" / "cpu_share.py"))
busy_windows, Share = script["busy_windows"], script["Share"]


def test_each_window_is_the_busy_share_of_every_core() -> None:
    # 2 cores: 60 CPU-s in the first 30 s (all), 15 in the next 30 (a quarter)
    timeline = [(0.0, 0.0), (10.0, 20.0), (30.0, 60.0), (45.0, 70.0), (60.0, 75.0), (70.0, 80.0)]
    assert busy_windows(timeline, 2) == [100, 25]  # the last 10 s are not a whole window
    assert busy_windows([], 2) == []


def test_the_rest_is_what_no_part_accounts_for() -> None:
    share = Share(
        command="make test",
        exit=0,
        wall_s=100.0,
        cores=2,
        busy_s=150.0,
        containers_s={"sockets-lab/server:latest": 40.0, "sockets-lab/client:latest": 10.0},
        started={"sockets-lab/server:latest": 2, "sockets-lab/client:latest": 9},
        unplaced_s=5.0,
        daemons_s={"dockerd": 20.0},
        command_s=45.0,
        busy_per_window=[75],
    )
    assert share.rest_s == 30.0
    table = share.table()
    assert "busy 150 CPU-s, 75% of what it had" in table
    assert "| containers of `sockets-lab/server:latest` (2) | 40 | 27% |" in table
    assert "| the rest (kernel, shims, runc, storage driver) | 30 | 20% |" in table
    assert table.index("server:latest") < table.index("client:latest")  # largest first
