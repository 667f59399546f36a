"""The cluster's nodes run under cgroup parents of their own (labstack.cluster), which the engine
makes and never removes: Cluster.stop() removes them once empty, and leaves one in use."""

from __future__ import annotations

from pathlib import Path

from labstack import cluster


def test_v1_every_hierarchy_is_swept_and_a_busy_parent_stays(tmp_path: Path) -> None:
    for controller in ("cpu", "memory", "pids"):
        (tmp_path / controller / "sockets-lab-cluster-manager").mkdir(parents=True)
        (tmp_path / controller / "sockets-lab-cluster-worker1").mkdir()
        (tmp_path / controller / "docker").mkdir()
    busy = tmp_path / "pids" / "sockets-lab-cluster-worker1"
    (busy / "a-container").mkdir()  # a cgroup below it: in use
    assert len(cluster.cgroup_parents(["manager", "worker1"], tmp_path)) == 6
    left = cluster.remove_cgroup_parents(["manager", "worker1"], tmp_path)
    assert len(left) == 1 and left[0].startswith(str(busy)), left
    assert cluster.cgroup_parents(["manager", "worker1"], tmp_path) == [busy]
    assert all((tmp_path / c / "docker").is_dir() for c in ("cpu", "memory", "pids"))


def test_v2_one_hierarchy(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "sockets-lab-cluster-solo").mkdir()
    (tmp_path / "system.slice" / "sockets-lab-cluster-solo").mkdir(parents=True)  # not ours
    assert cluster.remove_cgroup_parents(["solo"], tmp_path) == []
    assert not (tmp_path / "sockets-lab-cluster-solo").exists()
    assert (tmp_path / "system.slice" / "sockets-lab-cluster-solo").is_dir()


def test_a_hierarchy_under_two_names_is_not_reported(tmp_path: Path) -> None:
    (tmp_path / "cpu,cpuacct" / "sockets-lab-cluster-manager").mkdir(parents=True)
    (tmp_path / "cpu").symlink_to("cpu,cpuacct")
    (tmp_path / "cpuacct").symlink_to("cpu,cpuacct")
    assert cluster.remove_cgroup_parents(["manager"], tmp_path) == []
    assert cluster.cgroup_parents(["manager"], tmp_path) == []
