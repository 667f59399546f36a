"""Without a Docker engine the integration tests are skipped with one reason, and the unit tests
are untouched (make test-unit runs them alone)."""

from __future__ import annotations

import os
import subprocess
import sys

from labstack import ROOT


def test_without_an_engine_integration_tests_are_skipped_with_one_reason(tmp_path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            "tests/integration/test_cleanup.py",
            "tests/unit/test_netinfo.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "no Docker engine" in skipped[0], out  # one line, one reason
    assert "no-docker.sock" in skipped[0], skipped  # and it says which engine it tried
    assert " passed" in out and " skipped" in out and "error" not in out.lower(), out
