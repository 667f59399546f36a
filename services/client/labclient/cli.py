"""``python3 -m labclient SUBCOMMAND``: talk to any lab server; exit status says how it went.

Exit statuses: 0 ok, 2 usage, 3 server unreachable, 4 timed out, 5 protocol error,
6 data mismatch. A failure prints one line, ``client: error: ...``, on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from lab import settings

from . import demo, exchanges
from .config import ClientConfig
from .errors import EXIT_USAGE, ClientError
from .report import summarize
from .transport import FAMILIES

_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kib|kb|m|mib|mb)?\s*$", re.IGNORECASE)
_SCALE = {None: 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1 << 10,
          "m": 1 << 20, "mib": 1 << 20, "mb": 1 << 20}


def parse_size(text: str) -> int:
    """``4096``, ``64KiB``, ``1MiB`` -> bytes (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (try 4096, 64KiB, 1MiB)")
    return int(match.group(1)) * _SCALE[match.group(2) and match.group(2).lower()]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def build_parser(cfg: ClientConfig) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labclient", description=__doc__.split("\n\n")[0],
        epilog="Defaults come from LAB_* environment variables (see the README).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default=cfg.host, help="server name or address (%(default)s)")
    common.add_argument("--family", choices=sorted(FAMILIES), default="any",
                        help="IP version to use: 4, 6 or any (%(default)s)")
    common.add_argument("--deadline", type=float, default=cfg.connect_deadline_s, metavar="S",
                        help="keep retrying to connect for S seconds (%(default)s)")
    common.add_argument("--timeout", type=float, default=cfg.timeout_s, metavar="S",
                        help="give up when an exchange makes no progress for S seconds "
                             "(%(default)s)")
    common.add_argument("--json", action="store_true", help="print the result as one JSON line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    echo = sub.add_parser("echo", parents=[common], help="TCP echo: send random bytes, "
                          "check they come back intact")
    echo.add_argument("--port", type=int, default=cfg.echo_port, help="(%(default)s)")
    echo.add_argument("--size", type=parse_size, default=parse_size("64KiB"),
                      help="payload size, e.g. 4096, 64KiB, 1MiB (64KiB)")
    echo.add_argument("--connections", type=positive_int, default=1, metavar="N",
                      help="N clients at once, each with its own payload (%(default)s)")

    udp = sub.add_parser("udp", parents=[common], help="UDP echo: datagrams out and back")
    udp.add_argument("--port", type=int, default=cfg.udp_port, help="(%(default)s)")
    udp.add_argument("--size", type=parse_size, default=512, help="datagram size (512)")
    udp.add_argument("--count", type=positive_int, default=3, help="datagrams (%(default)s)")
    udp.add_argument("--retries", type=int, default=5,
                     help="resends of a datagram whose echo is lost (%(default)s)")
    udp.add_argument("--reply-timeout", type=float, default=1.0, metavar="S",
                     help="wait this long for each echo before resending (%(default)s)")

    greet = sub.add_parser("greet", parents=[common], help="read the greeting line")
    greet.add_argument("--port", type=int, default=cfg.greet_port, help="(%(default)s)")

    dem = sub.add_parser("demo", parents=[common], help="every exchange over IPv4 and IPv6, "
                         "narrated (the container's default)")
    dem.add_argument("--echo-port", type=int, default=cfg.echo_port, help="(%(default)s)")
    dem.add_argument("--udp-port", type=int, default=cfg.udp_port, help="(%(default)s)")
    dem.add_argument("--greet-port", type=int, default=cfg.greet_port, help="(%(default)s)")
    return parser


def run_command(args: argparse.Namespace) -> dict:
    family = FAMILIES[args.family]
    if args.command == "echo":
        if args.connections > 1:
            return exchanges.tcp_echo_many(args.host, args.port, family, args.size,
                                           args.connections, args.deadline, args.timeout)
        return exchanges.tcp_echo(args.host, args.port, family, args.size, args.deadline,
                                  args.timeout)
    if args.command == "udp":
        return exchanges.udp_echo(args.host, args.port, family, args.size, args.count,
                                  args.retries, args.reply_timeout, args.deadline)
    if args.command == "greet":
        return exchanges.greet(args.host, args.port, family, args.deadline, args.timeout)
    ports = {"echo": args.echo_port, "udp": args.udp_port, "greet": args.greet_port}
    say = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    return demo.run(args.host, ports, args.deadline, args.timeout, say)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = settings.load(ClientConfig)
    except settings.SettingsError as exc:
        print(f"client: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser(cfg).parse_args(argv)
    try:
        result = run_command(args)
    except ClientError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "exit_status": exc.exit_status,
                              **exc.details}))
        print(f"client: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps({"ok": True, **result}))
    elif args.command != "demo":
        print(summarize(result))
    if args.command == "demo" and not result["crossed_hosts"]:
        print("client: error: the demo's exchanges did not all cross hosts", file=sys.stderr)
        return 1
    return 0
