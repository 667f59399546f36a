"""The engine is shared: while one test lists containers, another's go away. The Docker SDK's
``containers.list()`` lists, then inspects each container it found, and a container removed in
between fails the whole call with ``NotFound`` (a CI run lost a soak test to it). Every call the
project makes passes ``ignore_removed=True``; the low-level ``api.containers()`` does not inspect
and needs nothing."""

from __future__ import annotations

import ast
import io
from pathlib import Path
from types import SimpleNamespace

from docker.models.images import Image
from labstack import ROOT
from labstack.cluster import save_image


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
