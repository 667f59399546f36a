"""`scripts/cpu_share.py`: the CPU a container spends is put on its image, and the command's
exit status is passed on."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from labstack import ROOT, ComposeStack

BURN_S = 1.5
BURN = f"import time\nend = time.process_time() + {BURN_S}\nwhile time.process_time() < end: pass"


def cpu_share(*command: str, out: Path) -> subprocess.CompletedProcess[str]:
    script = ROOT / "scripts" / "cpu_share.py"
    return subprocess.run(
        [sys.executable, str(script), "--json", str(out), "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_containers_cpu_is_put_on_its_image(stack: ComposeStack, tmp_path: Path) -> None:
    # A container of an image of this test's own (the client image under a tag of its own),
    # in which nothing but `sleep` runs: other groups run beside this test, and what their
    # containers spend is put on the lab's images (a server's health checks, or the kit's
    # clients, once added 1.3-1.8 CPU-s while a busy machine took 10 s over the burn).
    own = f"sockets-lab/client:cpu-share-{uuid.uuid4().hex[:8]}"
    stack.docker.images.get(f"sockets-lab/client:{stack.image_tag}").tag(own)
    try:
        host = stack.docker.containers.run(
            own,
            ["infinity"],
            entrypoint=["sleep"],
            detach=True,
            labels=stack.oneoff_labels(),
            **stack.hardening,
        )
        try:
            run = cpu_share(
                "docker", "exec", host.id, "python3", "-c", BURN, out=tmp_path / "s.json"
            )
        finally:
            host.remove(force=True)
    finally:
        stack.docker.images.remove(own)
    assert run.returncode == 0, run.stdout + run.stderr
    share = json.loads((tmp_path / "s.json").read_text())
    # the burn, plus the interpreter's start, and no more
    assert BURN_S * 0.9 <= share["containers_s"][own] <= BURN_S + 1.0, share
    assert share["busy_s"] >= share["containers_s"][own]
    assert f"| containers of `{own}` (" in run.stdout, run.stdout


def test_the_commands_exit_status_is_passed_on(tmp_path: Path) -> None:
    run = cpu_share("sh", "-c", "exit 3", out=tmp_path / "s.json")
    assert run.returncode == 3, run.stdout + run.stderr
    assert json.loads((tmp_path / "s.json").read_text())["exit"] == 3
