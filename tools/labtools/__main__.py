"""``python -m labtools COMMAND``: the lab's host tools that work on files, for use anywhere.

python -m labtools ladder CAPTURE.pcap[ng] [--names names.json] > ladder.html
python -m labtools bench-page RESULTS.json [OTHER.json] > bench.html
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import benchpage, ladder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m labtools", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ladder = sub.add_parser(
        "ladder",
        help="draw a capture as ladder diagrams: one self-contained HTML page on stdout",
        description="Draw a pcap or pcapng file as ladder (sequence) diagrams, one per "
        "conversation: a self-contained HTML page on stdout (or --out).",
    )
    ladder.add_argument("capture", type=Path, help="a pcap or pcapng file")
    ladder.add_argument(
        "--names",
        type=Path,
        metavar="JSON",
        help='labels for addresses: {"172.18.0.2": "server\\nhost 0a1b2c3d"}',
    )
    ladder.add_argument("--title", default="", help="the page's title")
    ladder.add_argument("--out", type=Path, help="write here instead of stdout")
    page = sub.add_parser(
        "bench-page",
        help="the benchmark's results as a page (two files: side by side)",
        description="The benchmark's JSON results as a self-contained HTML page; with a "
        "second file, the two runs side by side.",
    )
    page.add_argument("results", type=Path, nargs="+", metavar="RESULTS.json")
    page.add_argument("--out", type=Path, help="write here instead of stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "ladder":
            names = json.loads(args.names.read_text()) if args.names else None
            text = ladder.render_file(args.capture, names, args.title)
        else:
            if len(args.results) > 2:
                raise ValueError("one results file, or two to compare")
            text = benchpage.render_files(args.results)
    except (OSError, ValueError) as exc:
        print(f"labtools {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
