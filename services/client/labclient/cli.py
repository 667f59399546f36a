"""python3 -m labclient SUBCOMMAND: talk to any lab server; the exit status says how it went.

Subcommands: echo, udp, greet, app (the framed protocol), raw (any bytes), demo.
Exit statuses: 0 ok, 2 usage, 3 server unreachable, 4 timed out, 5 protocol error,
6 data mismatch. A failure prints one line, ``client: error: ...``, on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from lab import framing, registry, settings

from . import app, demo, exchanges, raw
from .config import ClientConfig
from .errors import EXIT_INTERRUPTED, EXIT_STATUSES, EXIT_USAGE, ClientError
from .results import DemoResult, RepeatResult, Result, endpoints_of
from .transport import FAMILIES, Target, retry_exchange

_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kib|kb|m|mib|mb)?\s*$", re.IGNORECASE)
_SCALE = {
    None: 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "mb": 1 << 20,
}


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


@dataclass(frozen=True)
class Command:
    """A subcommand: its help, its own options, how it runs, and whether ``--retries`` and
    ``--repeat`` apply (idempotent exchanges only)."""

    help: str
    listener: str  # whose port (lab.registry) is its default ("" for none)
    add_options: Callable[[argparse.ArgumentParser, ClientConfig, dict[str, int]], None]
    run: Callable[[argparse.Namespace, Target], Result]
    retried: bool = False


def _echo_options(p: argparse.ArgumentParser, cfg: ClientConfig, ports: dict[str, int]) -> None:
    p.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("64KiB"),
        help="payload size, e.g. 4096, 64KiB, 1MiB (64KiB)",
    )
    p.add_argument(
        "--connections",
        type=positive_int,
        default=1,
        metavar="N",
        help="N clients at once, each with its own payload (%(default)s)",
    )
    p.add_argument(
        "--pace",
        type=float,
        default=0.0,
        metavar="S",
        help="a slow sender: pause S seconds between 64 KiB chunks (%(default)s)",
    )
    p.add_argument(
        "--text",
        metavar="TEXT",
        help="send this text instead of random bytes, and print what came back",
    )


def _echo(args: argparse.Namespace, target: Target) -> Result:
    if args.connections > 1:
        return exchanges.tcp_echo_many(target, args.size, args.connections)
    return exchanges.tcp_echo(target, args.size, args.pace, args.text)


def _udp_options(p: argparse.ArgumentParser, cfg: ClientConfig, ports: dict[str, int]) -> None:
    p.add_argument("--size", type=parse_size, default=512, help="datagram size (512)")
    p.add_argument("--count", type=positive_int, default=3, help="datagrams (%(default)s)")
    p.add_argument(
        "--retries",
        type=int,
        default=5,
        help="resends of a datagram whose echo is lost (%(default)s)",
    )
    p.add_argument(
        "--reply-timeout",
        type=float,
        default=1.0,
        metavar="S",
        help="wait this long for an echo before resending, twice as long after each resend "
        "(at most 8 times as long) (%(default)s)",
    )


def _udp(args: argparse.Namespace, target: Target) -> Result:
    return exchanges.udp_echo(target, args.size, args.count, args.retries, args.reply_timeout)


def _app_options(p: argparse.ArgumentParser, cfg: ClientConfig, ports: dict[str, int]) -> None:
    p.add_argument(
        "action",
        help="search, echo, reverse or whoami (the server answers an error for anything else)",
    )
    p.add_argument("value", nargs="?", default=None, help="the action's value")
    p.add_argument(
        "--binary",
        action="store_true",
        help="send a binary request instead (the tutorial's: action+value as bytes)",
    )
    p.add_argument(
        "--pipeline",
        type=positive_int,
        default=1,
        metavar="N",
        help="send N requests back to back on one connection (%(default)s)",
    )
    p.add_argument(
        "--connections",
        type=positive_int,
        default=1,
        metavar="N",
        help="N clients at once, each sending its requests (%(default)s)",
    )
    p.add_argument(
        "--encoding", default="utf-8", help="text encoding of the JSON content (%(default)s)"
    )


def _app(args: argparse.Namespace, target: Target) -> Result:
    return app.run(
        target,
        args.action,
        args.value,
        pipeline=args.pipeline,
        binary=args.binary,
        encoding=args.encoding,
        connections=args.connections,
    )


def _text(value: str) -> bytes:
    return value.encode("utf-8")


def _raw_options(p: argparse.ArgumentParser, cfg: ClientConfig, ports: dict[str, int]) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--hex",
        dest="payloads",
        action="append",
        type=bytes.fromhex,
        metavar="HEX",
        help="bytes to send, in hex; repeat for several connections in turn",
    )
    what.add_argument(
        "--text",
        dest="payloads",
        action="append",
        type=_text,
        metavar="TEXT",
        help="the same, as text (UTF-8)",
    )
    p.add_argument(
        "--half-close", action="store_true", help="shut down our sending side after the bytes"
    )


def _raw(args: argparse.Namespace, target: Target) -> Result:
    return raw.run(target, args.payloads, args.half_close)


def _no_options(p: argparse.ArgumentParser, cfg: ClientConfig, ports: dict[str, int]) -> None:
    pass


def _greet(args: argparse.Namespace, target: Target) -> Result:
    return exchanges.greet(target)


def _demo_options(p: argparse.ArgumentParser, cfg: ClientConfig, ports: dict[str, int]) -> None:
    for row in registry.LISTENERS:  # --echo-port, --udp-port, ... (LAB_ECHO_PORT, ...)
        p.add_argument(
            f"--{row.port_setting.replace('_', '-')}",
            dest=row.port_setting,
            type=int,
            default=ports[row.name],
            help=f"{row.name} (%(default)s)",
        )
    p.add_argument(
        "--server",
        choices=list(registry.SERVERS),
        default=cfg.server,
        help="which server program runs (LAB_SERVER): the demo asks only for what "
        "it serves (%(default)s)",
    )


def _demo(args: argparse.Namespace, target: Target) -> Result:
    say = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    ports = {row.name: getattr(args, row.port_setting) for row in registry.LISTENERS}
    return demo.run(target, ports, say, server=args.server)


COMMANDS = {
    "echo": Command(
        "TCP echo: send random bytes, check they come back intact",
        "tcp-echo",
        _echo_options,
        _echo,
        retried=True,
    ),
    "udp": Command("UDP echo: datagrams out and back", "udp-echo", _udp_options, _udp),
    "app": Command(
        "framed application protocol: search, echo, reverse, whoami",
        "app",
        _app_options,
        _app,
        retried=True,
    ),
    "raw": Command(
        "send raw bytes (--hex or --text), show what comes back: like nc, and "
        "framed replies decoded",
        "app",
        _raw_options,
        _raw,
    ),
    "greet": Command("read the greeting line", "greeting", _no_options, _greet, retried=True),
    "demo": Command(
        "every exchange over IPv4 and IPv6, narrated (the container's default)",
        "",
        _demo_options,
        _demo,
    ),
}


def build_parser(cfg: ClientConfig, ports: dict[str, int]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labclient",
        description=__doc__.split("\n\n")[0],
        epilog="exit statuses:\n"
        + "\n".join(f"  {status:>3}  {meaning}" for status, meaning in EXIT_STATUSES)
        + "\n\nsettings (environment variables, with their defaults; options override them):\n"
        + settings.help_text(settings.documented(ClientConfig) + registry.port_settings()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default=cfg.host, help="server name or address (%(default)s)")
    common.add_argument(
        "--family",
        choices=sorted(FAMILIES),
        default="any",
        help="IP version to use: 4, 6 or any (%(default)s)",
    )
    common.add_argument(
        "--deadline",
        type=float,
        default=cfg.connect_deadline_s,
        metavar="S",
        help="keep retrying to connect for S seconds (%(default)s)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=cfg.timeout_s,
        metavar="S",
        help="give up when an exchange makes no progress for S seconds (%(default)s)",
    )
    common.add_argument(
        "--max-time",
        type=float,
        default=cfg.max_time_s,
        metavar="S",
        help="give up when an exchange has taken S seconds in all, progress or not (%(default)s)",
    )
    common.add_argument("--json", action="store_true", help="print the result as one JSON line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, parents=[common], help=command.help)
        if command.listener:
            p.add_argument(
                "--port", type=int, default=ports[command.listener], help="(%(default)s)"
            )
        command.add_options(p, cfg, ports)
        if command.retried:
            p.add_argument(
                "--retries",
                type=int,
                default=2,
                metavar="N",
                help="run the exchange again up to N times if the connection is "
                "lost or stalls (%(default)s)",
            )
            p.add_argument(
                "--repeat",
                type=positive_int,
                default=1,
                metavar="N",
                help="do the whole exchange N times, each checked; Ctrl-C ends the run with "
                "the summary of those completed, exit 130 (%(default)s)",
            )
            p.add_argument(
                "--interval",
                type=float,
                default=0.0,
                metavar="S",
                help="with --repeat, wait S seconds between exchanges, to keep a "
                "client talking through a restart or an update (%(default)s)",
            )
    return parser


def run_command(args: argparse.Namespace) -> Result:
    command = COMMANDS[args.command]
    target = Target(
        args.host,
        getattr(args, "port", 0),
        FAMILIES[args.family],
        args.deadline,
        args.timeout,
        args.max_time,
    )
    if not command.retried:
        return command.run(args, target)
    return repeat(args, lambda: command.run(args, target))


def repeat(args: argparse.Namespace, exchange: Callable[[], Result]) -> Result:
    """``--repeat N`` times ``exchange`` (each retried per ``--retries``); one summary. Ctrl-C
    (SIGINT) after at least one exchange ends the run (the exchange under way is dropped) with
    the summary of those completed, marked ``interrupted`` (exit 130): what was checked is not
    lost."""
    results = []
    interrupted = False
    try:
        for i in range(args.repeat):
            if i and args.interval > 0:
                time.sleep(args.interval)
            results.append(
                retry_exchange(
                    f"{args.command} {i + 1} of {args.repeat}",
                    exchange,
                    args.retries,
                    args.deadline,
                )
            )
    except KeyboardInterrupt:
        if args.repeat == 1 or not results:
            raise
        interrupted = True
    if args.repeat == 1:
        return results[0]
    last = results[-1]
    ends = endpoints_of(last)
    assert ends is not None  # every repeatable exchange has its endpoints
    return RepeatResult(
        args.command,
        ends,
        repeats=args.repeat,
        completed=len(results),
        retried=sum(getattr(r, "retries", 0) for r in results),
        all_ok=True,
        last=last,
        interrupted=interrupted,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        cfg, ports = settings.load(ClientConfig), registry.ports()
    except settings.SettingsError as exc:
        print(f"client: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser(cfg, ports)
    args, extra = parser.parse_known_args(argv)
    # argparse (3.11) will not fill an optional positional that follows a flag, as in
    # `app echo --binary hello`: take that one word as the value ourselves.
    if (
        args.command == "app"
        and args.value is None
        and len(extra) == 1
        and not extra[0].startswith("-")
    ):
        args.value, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        result = run_command(args)
        if isinstance(result, DemoResult) and not result.crossed_hosts:
            raise ClientError("the demo's exchanges did not all cross hosts", result=result)
    except ClientError as exc:
        if args.json:
            print(
                json.dumps(
                    {"ok": False, "error": str(exc), "exit_status": exc.exit_status, **exc.details}
                )
            )
        print(f"client: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except framing.LocalProtocolError as exc:  # what the user asked us to send cannot be framed
        print(f"client: error: cannot send that: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps({"ok": True, **result.to_json()}))
    elif args.command != "demo":
        print(result.summary())
    return EXIT_INTERRUPTED if getattr(result, "interrupted", False) else 0
