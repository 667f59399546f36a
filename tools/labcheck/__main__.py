"""``python -m labcheck server|client``: grade any server or client across real hosts.

    python -m labcheck server --program path/to/server.py [--protocols echo,udp,greet,app]
    python -m labcheck server --image name [--args "..."] [--port-echo 7000 ...]
    python -m labcheck client --program path/to/client.py [--args "{host} {message}"]
    python -m labcheck exercise [N] [--program path]    the learning path's exercises

A table in the terminal (colour on a TTY), --json for one JSON object, --report PATH for the JSON
report there and JUnit XML beside it (report.xml), and a packet capture of each failed case in
the report's folder (checks/<program>-<time>/ without --report). Exit status: 0 when every
applicable case passes, 1 when any fails, 2 when the kit could not run the program (one line
says why). docs/check.md walks through a check.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import signal
import sys
from pathlib import Path

import docker.errors
from labstack import ROOT
from labstack.stack import StackError

from . import captures, exercises
from .kit import DEFAULT_PORTS, ClientCheck, KitError, Program, ServerCheck

EXIT_PASSED, EXIT_FAILED, EXIT_COULD_NOT_RUN = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labcheck",
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 every applicable case passed; 1 a case failed; 2 the kit could "
        "not run the program.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="mode", required=True, metavar="MODE")
    exercise = sub.add_parser(
        "exercise",
        help="grade a learning-path exercise (docs/learn.md); without N, list them",
        description="grade an exercise of docs/learn.md on the cases it is about",
    )
    exercise.add_argument("number", type=int, nargs="?", metavar="N", help="the exercise")
    exercise.add_argument(
        "--program",
        type=Path,
        metavar="PATH",
        help="the file to grade (default: the starting file, docs/exercises/...)",
    )
    exercise.add_argument("--report", type=Path, metavar="PATH", help="as for server and client")
    for mode, text in (
        ("server", "grade a server: reachability, echo, UDP, greeting, app"),
        ("client", "grade an echo client against unkind proving servers"),
    ):
        p = sub.add_parser(mode, help=text, description=text)
        what = p.add_mutually_exclusive_group(required=True)
        what.add_argument(
            "--program",
            type=Path,
            metavar="PATH",
            help="a Python program, run unchanged in the lab's Python image",
        )
        what.add_argument("--image", metavar="NAME", help="any image (any language), as it is")
        p.add_argument(
            "--args",
            default="",
            metavar="ARGS",
            help="arguments for the program ("
            + ("none" if mode == "server" else "'{host} {message}'")
            + ")",
        )
        if mode == "server":
            p.add_argument(
                "--protocols",
                default="",
                metavar="LIST",
                help="what it serves: echo,udp,greet,app (found from its sockets)",
            )
            for name, port in DEFAULT_PORTS.items():
                p.add_argument(
                    f"--port-{name}",
                    type=int,
                    default=port,
                    metavar="PORT",
                    help=f"its {name} port ({port})",
                )
        p.add_argument(
            "--cases",
            default="",
            metavar="LIST",
            help="grade only these cases: ids or patterns, comma-separated (reach.*,echo.small)",
        )
        p.add_argument(
            "--report",
            type=Path,
            metavar="PATH",
            help="write the JSON report here, and report.xml (JUnit) beside it",
        )
        p.add_argument("--json", action="store_true", help="print the report as one JSON object")
        p.add_argument("--image-tag", default="latest", help="the lab's images' tag (latest)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "exercise":
        if args.number is None:
            print(exercises.listing())
            return 0
        try:
            chosen = exercises.by_number(args.number)
        except KeyError:
            print(f"labcheck: no exercise {args.number}\n{exercises.listing()}", file=sys.stderr)
            return EXIT_COULD_NOT_RUN
        print(f"exercise {chosen.number}: {chosen.task}", flush=True)
        where = ["--report", str(args.report)] if args.report else []
        return main(exercises.arguments(chosen, args.program) + where)
    # SIGTERM (a CI job cancelled, a timeout's kill) unwinds as Ctrl-C does: the check's
    # containers and network are swept on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    program = Program(args.program, args.image, shlex.split(args.args))
    only = tuple(c.strip() for c in args.cases.split(",") if c.strip())
    try:
        if args.mode == "server":
            ports = {name: getattr(args, f"port_{name}") for name in DEFAULT_PORTS}
            protocols = [p for p in args.protocols.split(",") if p] or None
            bad = set(protocols or ()) - set(DEFAULT_PORTS)
            if bad:
                raise KitError(f"unknown protocols {sorted(bad)} (echo, udp, greet, app)")
            check: ServerCheck | ClientCheck = ServerCheck(
                program, protocols, ports, args.image_tag, only
            )
        else:
            check = ClientCheck(program, args.image_tag, only)
        with check:
            report = check.grade()
            pcap, names = check.pcap, check.names
    except KitError as exc:
        print(f"labcheck: cannot run the program: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    except (docker.errors.DockerException, StackError) as exc:
        print(f"labcheck: cannot run the program: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    folder = (
        args.report.parent
        if args.report
        else ROOT / "checks" / (f"{program.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    )
    captures.keep(pcap, report, folder, names)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        report.write(args.report)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        report.print_table()
    return report.exit_status


if __name__ == "__main__":
    sys.exit(main())
