"""``make screenshots``: the pictures in the README and docs, made by the code that draws them,
never by hand.

    docs/ladder.png   the demo's framed request and reply, captured across containers and drawn
                      as a ladder (labtools.ladder), as headless Chromium shows it

A stack of its own comes up, the demo runs under tcpdump (as ``make capture``), the page is
drawn, and the first IPv4 conversation of the app protocol is photographed.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

from lab import registry
from labstack import ROOT, ComposeStack, StackError, capture

from . import command, ladder
from .browser import Browser
from .capture import host_names

LADDER_PNG = ROOT / "docs" / "ladder.png"
WIDTH = 1000


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="make screenshots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)  # no options: --help says what it does, and does nothing else
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        with ComposeStack(project=f"labscreens-{stamp}") as stack:
            with stack.capture() as captured:
                demo = stack.run_client("demo")
            if demo.exit_code != 0:
                print(f"make screenshots: the demo failed: {demo}", file=sys.stderr)
                return 1
            names = host_names(stack)
    except StackError as exc:
        print(f"make screenshots: error: {exc}", file=sys.stderr)
        return 1
    found = ladder.ladders(capture.read_frames(captured["pcap"]))
    app = registry.default_port("app")
    number = next(
        i for i, ld in enumerate(found, 1) if ld.server[1] == app and ":" not in ld.server[0]
    )
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "demo.html"
        page.write_text(
            ladder.page(capture.read_frames(captured["pcap"]), "The demo on the wire", names)
        )
        with Browser() as browser:
            browser.element_screenshot(page, WIDTH, f"#c{number}", LADDER_PNG)
    print(f"make screenshots: wrote {LADDER_PNG.relative_to(ROOT)} (conversation {number})")
    return 0


if __name__ == "__main__":
    sys.exit(command.run(main))
