"""The project installs as one package set: `pip wheel .` builds a wheel holding every package
(each from where it lives in the tree) and the two commands, and nothing needs a path edit."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from labstack import ROOT


def test_pip_wheel_builds_every_package(tmp_path: Path) -> None:
    # From a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "*.egg-info",
            ".fuzz",
            "checks",
            "captures",
            "__pycache__",
            ".*_cache",
            "bench",
        ),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("sockets_lab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in config["packages"]:
        folder = ROOT / config["package-dir"][package]
        modules = sorted(p.name for p in folder.glob("*.py"))
        assert modules, package
        assert {f"{package}/{m}" for m in modules} <= set(names), package
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "labserver = labserver.__main__:main" in text
    assert "labclient = labclient.__main__:main" in text


def test_nothing_edits_the_import_path() -> None:
    for path in [
        *ROOT.glob("services/**/*.py"),
        *ROOT.glob("tools/**/*.py"),
        *ROOT.glob("scripts/*.py"),
    ]:
        assert "sys.path" not in path.read_text(), path
