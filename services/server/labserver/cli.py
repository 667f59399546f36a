"""The server's command line: ``python3 -m labserver`` serves (``__main__`` hands over here).

Which listeners it serves, on which ports, with which protocol and settings: the registry
(``lab.registry``), read here once.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import logs, registry, settings
from lab.netinfo import local_addresses

from . import health
from .config import ServerConfig, load_settings
from .loop import EventLoop

log = logging.getLogger("server")


def build(
    config: ServerConfig,
    ports: dict[str, int],
    protocol_of: Callable[[registry.Listener], Any] | None = None,
) -> EventLoop:
    """A loop serving every listener of the registry on ``ports``, each protocol built with
    the settings its row names. ``protocol_of`` overrides how a row's protocol is found (a test
    wraps it)."""
    loop = EventLoop(config)
    for row in registry.served_by("lab"):
        protocol = protocol_of(row) if protocol_of else registry.resolve(row.protocol)
        options = {keyword: getattr(config, field) for keyword, field in row.settings}
        if row.kind == "udp":
            loop.listen_udp(protocol, ports[row.name], **options)
        else:
            loop.listen_tcp(protocol, ports[row.name], **options)
    return loop


def write_ports(path: str, loop: EventLoop) -> None:
    """The ports each listener bound, as JSON, where tests and tools read them (written whole:
    a reader never sees half of it)."""
    bound = {listener.name: listener.port for listener in loop.listeners}
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(bound))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The settings' list is read from the source: only for --help, not for every health probe.
    wants_help = any(arg in ("-h", "--help") for arg in argv)
    parser = argparse.ArgumentParser(
        prog="labserver",
        description="Sockets lab server: TCP echo, UDP echo, framed app and greeting listeners.\n"
        "Settings come from LAB_* environment variables, listed below with their defaults\n"
        "(docs/configuration.md has them all, with the client's and the scripts').",
        epilog=(
            "settings (environment variables, with their defaults):\n"
            + settings.help_text(settings.documented(ServerConfig) + registry.port_settings())
            if wants_help
            else None
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--healthcheck",
        action="store_true",
        help="probe the running server's listeners and exit 0 if all answer",
    )
    args = parser.parse_args(argv)
    if args.healthcheck:  # spelt otherwise (--health): `--healthcheck` alone never gets here
        return health.main()
    try:
        config, ports = load_settings()
    except settings.SettingsError as exc:
        print(f"labserver: {exc}", file=sys.stderr)
        return 2
    if config.server != "lab":  # a tutorial step: its own short program, TCP echo only
        step = importlib.import_module(f"labtutorial.{config.server}")
        return int(step.main([config.bind, str(ports["tcp-echo"])]))

    logs.configure(config.log_level, config.log_format)
    try:
        loop = build(config, ports)
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    loop.handle_signals()
    log.info("server %s up, addresses %s", socket.gethostname(), ", ".join(local_addresses()))
    for listener in loop.listeners:
        log.info("listening: %s", listener.describe())
    if config.ports_file:
        write_ports(config.ports_file, loop)
    log.info("settings: %s", settings.describe(config))
    log.info(
        "memory budget for buffered bytes: %d (%s)",
        loop.budget,
        "LAB_MEMORY_BUDGET_BYTES" if config.memory_budget_bytes else "a third of the memory limit",
        extra={"event": "budget", "bytes": loop.budget},
    )
    return loop.run()
