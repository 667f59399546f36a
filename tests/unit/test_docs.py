"""Documents generated from the code are committed as generated: `make docs` rewrites them, and
this fails when a change to the code did not."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from lab import registry, settings
from labserver.config import ServerConfig
from labstack import ROOT
from labtools import docs


@pytest.mark.parametrize("path", sorted(docs.GENERATED))
def test_generated_document_is_up_to_date(path: str) -> None:
    assert (ROOT / path).read_text() == docs.render()[path], f"run `make docs` ({path})"


SCANNED = ["services", "tools", "scripts", "deploy", "bench", "compose.yaml", "Makefile", ".ci"]


def test_every_lab_variable_the_code_reads_is_in_the_configuration_reference() -> None:
    """A variable read anywhere (Python, shell, compose files) but missing from the generated
    docs/configuration.md fails here: add it to its dataclass (with a comment) or to
    labtools.docs.DEPLOYMENT."""
    reference = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`(LAB_[A-Z0-9_]+)`", reference))
    found: dict[str, str] = {}
    for top in SCANNED:
        paths = [ROOT / top] if (ROOT / top).is_file() else (ROOT / top).rglob("*")
        for path in paths:
            if not path.is_file() or path.suffix in (".png", ".whl", ".gz", ".pcapng"):
                continue
            for name in re.findall(r"\bLAB_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")):
                found.setdefault(name, str(path.relative_to(ROOT)))
    assert len(found) > 30, found  # the scan did find the settings
    missing = {name: where for name, where in found.items() if name not in documented}
    assert not missing, f"read but not in docs/configuration.md: {missing}"


def test_the_servers_help_lists_every_setting_with_its_default() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "labserver", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for var, default, _ in settings.documented(ServerConfig) + registry.port_settings():
        assert f"{var}={default}" in out, var
    assert "``" not in out  # no reStructuredText markup in help
