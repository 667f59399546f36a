"""The engine is shared: while one test lists containers, another's go away. The Docker SDK's
``containers.list()`` lists, then inspects each container it found, and a container removed in
between fails the whole call with ``NotFound`` (a CI run lost a soak test to it). Every call the
project makes passes ``ignore_removed=True``; the low-level ``api.containers()`` does not inspect
and needs nothing. Also here: what a shared, busy engine does now and then (an image re-tagged
meanwhile, a swarm manager too slow to attach a container to its overlay)."""

from __future__ import annotations

import ast
import io
from pathlib import Path
from types import SimpleNamespace

import docker.errors
import pytest
from docker.models.images import Image
from labstack import ROOT
from labstack.cluster import run_attached, save_image


def high_level_lists(path: Path) -> list[ast.Call]:
    """The calls ``<client>.containers.list(...)`` in one file, leaving out the low-level
    ``<client>.api.containers.list`` (the cluster's node API, which returns plain dicts)."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        collection = node.func.value
        if node.func.attr != "list" or not isinstance(collection, ast.Attribute):
            continue
        if collection.attr != "containers":
            continue
        if isinstance(collection.value, ast.Attribute) and collection.value.attr == "api":
            continue
        calls.append(node)
    return calls


def ignores_removed(call: ast.Call) -> bool:
    return any(
        k.arg == "ignore_removed" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def test_every_container_listing_ignores_containers_removed_meanwhile() -> None:
    files = [
        *ROOT.glob("tools/**/*.py"),
        *ROOT.glob("scripts/*.py"),
        *ROOT.glob("tests/**/*.py"),
    ]
    calls = [(p, c) for p in files for c in high_level_lists(p)]
    assert len(calls) >= 4  # the finder finds the calls it is meant to check (4 today)
    racy = [f"{p.relative_to(ROOT)}:{c.lineno}" for p, c in calls if not ignores_removed(c)]
    assert racy == []


def test_the_check_sees_a_racy_call(tmp_path: Path) -> None:
    source = tmp_path / "racy.py"
    source.write_text(
        "a = engine.containers.list(all=True)\n"
        "b = engine.containers.list(all=True, ignore_removed=True)\n"
        "c = node.api.containers.list()\n"
    )
    calls = high_level_lists(source)
    assert [c.lineno for c in calls] == [1, 2]
    assert [ignores_removed(c) for c in calls] == [False, True]


class RecordingApi:
    """What the SDK's ``Image.save`` asks the engine for: the image it names."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_image(self, image: str, chunk_size: int) -> list[bytes]:
        self.asked.append(image)
        return [b"archive of " + image.encode()]


def test_the_cluster_saves_an_image_under_the_name_it_asked_for() -> None:
    """Another test may tag the shared client image meanwhile (test_cpu_share does): the SDK's
    ``save(named=True)`` would name the archive after the first tag, ``:cpu-share-...``, and the
    nodes would have no ``:latest``."""
    api = RecordingApi()
    tags = ["sockets-lab/client:cpu-share-1a2b3c4d", "sockets-lab/client:latest"]
    image = Image(attrs={"Id": "sha256:ab", "RepoTags": tags}, client=SimpleNamespace(api=api))
    engine = SimpleNamespace(images=SimpleNamespace(get=lambda name: image))
    out = io.BytesIO()
    save_image(engine, "sockets-lab/client:latest", out)
    assert api.asked == ["sockets-lab/client:latest"]
    assert out.getvalue() == b"archive of sockets-lab/client:latest"
    image.save(named=True)  # what it did before, for contrast: the first tag
    assert api.asked[-1] == "sockets-lab/client:cpu-share-1a2b3c4d"


ATTACH_TIMEOUT = (
    "attaching to network failed, make sure your network options are correct and check manager "
    "logs: context deadline exceeded"
)


class FakeNodeContainers:
    """A node's ``containers`` whose first ``fail`` starts fail with ``error``."""

    def __init__(self, fail: int, error: str) -> None:
        self.fail, self.error = fail, error
        self.made: list[SimpleNamespace] = []

    def create(self, image: str, **options: object) -> SimpleNamespace:
        def start() -> None:
            if len(self.made) <= self.fail:
                raise docker.errors.APIError("500 Server Error", explanation=self.error)
            container.running = True

        def remove(force: bool = False) -> None:
            container.removed = force

        container = SimpleNamespace(
            image=image, options=options, start=start, remove=remove, running=False, removed=False
        )
        self.made.append(container)
        return container


def test_a_container_the_manager_did_not_attach_in_time_is_made_again() -> None:
    """Once in a CI run with both cores taken, a client container's start on a node failed
    with the engine's 20 s attach timeout, and the cluster test with it; the next start attached
    at once. The failed container is removed, not left "created"."""
    containers = FakeNodeContainers(fail=2, error=ATTACH_TIMEOUT)
    run = run_attached(SimpleNamespace(containers=containers), "img", network="lab_labnet")
    assert run is containers.made[-1] and run.running and len(containers.made) == 3
    assert [c.removed for c in containers.made] == [True, True, False]
    assert run.options == {"network": "lab_labnet"}


def test_attach_timeouts_end_after_three_attempts_and_other_errors_at_once() -> None:
    always = FakeNodeContainers(fail=99, error=ATTACH_TIMEOUT)
    with pytest.raises(docker.errors.APIError, match="context deadline"):
        run_attached(SimpleNamespace(containers=always), "img")
    assert len(always.made) == 3 and all(c.removed for c in always.made)
    once = FakeNodeContainers(fail=99, error=ATTACH_TIMEOUT)  # where the timeout is the verdict
    with pytest.raises(docker.errors.APIError, match="context deadline"):
        run_attached(SimpleNamespace(containers=once), "img", attempts=1)
    assert len(once.made) == 1
    other = FakeNodeContainers(fail=99, error="network lab6 not found")
    with pytest.raises(docker.errors.APIError, match="not found"):
        run_attached(SimpleNamespace(containers=other), "img")
    assert len(other.made) == 1 and other.made[0].removed
