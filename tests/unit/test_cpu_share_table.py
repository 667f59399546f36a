"""scripts/cpu_share.py's arithmetic: the busy timeline and what is left for "the rest"."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

from labstack import ROOT

script = runpy.run_path(str(ROOT / "scripts" / "cpu_share.py"))
busy_windows, Share, tally = script["busy_windows"], script["Share"], script["tally"]


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


def test_a_parents_cpu_beyond_its_placed_containers_is_unplaced() -> None:
    """A container that ends between two reads, or another engine's container beside ours,
    spends in the parent cgroup only; a parent gone before the end (a cluster node's) keeps
    its last reading."""
    docker, node = Path("/cg/docker"), Path("/cg/sockets-lab-cluster-a")
    watcher = SimpleNamespace(
        first={
            "a1": ("server", docker / "a1", 0.0),
            "b2": ("client", docker / "b2", 0.0),
            "c3": ("node", node / "c3", 1.0),  # there at the start: from 1.0
        },
        last={"a1": 10.0, "b2": 2.0, "c3": 31.0},
        parent_first={docker: 100.0, node: 1.0},
        parent_last={docker: 115.0, node: 31.0},
    )
    by_image, count, unplaced = tally(watcher)
    assert by_image == {"server": 10.0, "client": 2.0, "node": 30.0}
    assert count == {"server": 1, "client": 1, "node": 1}
    assert unplaced == 3.0  # docker's 15 less the 12 placed; the node's 30 all placed
