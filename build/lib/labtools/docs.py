"""``make docs``: write the documents that are generated from the code, so that they cannot
drift from it (a test fails when a committed one differs from what this writes).

    docs/client-result.schema.json   the client's --json lines (labclient.results)
"""

from __future__ import annotations

import argparse
import json

from labclient.results import json_schema
from labstack import ROOT

GENERATED = {"docs/client-result.schema.json": lambda: json.dumps(json_schema(), indent=2) + "\n"}


def render() -> dict[str, str]:
    """Each generated document's path (from the repository's root) and its text."""
    return {path: make() for path, make in GENERATED.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make docs", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed document is out of date",
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        target = ROOT / path
        if target.exists() and target.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            target.write_text(text)
            print(f"docs: wrote {path}")
    if args.check and stale:
        print(f"docs: out of date: {', '.join(stale)} (run `make docs`)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
