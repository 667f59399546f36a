"""Entry point: ``python3 -m labserver`` serves; ``--healthcheck`` probes a running server."""

from __future__ import annotations

import argparse
import importlib
import logging
import socket
import sys

from lab import defaults, logs, settings
from lab.netinfo import local_addresses

from . import health
from .app import AppProtocol
from .config import ServerConfig, config_problem
from .loop import EventLoop
from .protocols import EchoProtocol, GreetingProtocol, UdpEchoProtocol

log = logging.getLogger("server")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="labserver",
        description="Sockets lab server: TCP echo, UDP echo, framed app and greeting listeners. "
                    "Settings come from LAB_* environment variables (see the README).")
    parser.add_argument("--healthcheck", action="store_true",
                        help="probe the running server's listeners and exit 0 if all answer")
    args = parser.parse_args(argv)
    try:
        config = settings.load(ServerConfig)
    except settings.SettingsError as exc:
        print(f"labserver: {exc}", file=sys.stderr)
        return 2
    if config.log_level.upper() not in LOG_LEVELS:
        print(f"labserver: LAB_LOG_LEVEL={config.log_level!r} is not one of "
              f"{', '.join(LOG_LEVELS)}", file=sys.stderr)
        return 2
    if (problem := config_problem(config)) is not None:
        print(f"labserver: {problem}", file=sys.stderr)
        return 2
    if config.server not in defaults.SERVERS:
        print(f"labserver: LAB_SERVER={config.server!r} is not one of "
              f"{', '.join(defaults.SERVERS)}", file=sys.stderr)
        return 2
    if args.healthcheck:
        return health.check(config)
    if config.server != "lab":  # a tutorial step: its own short program, TCP echo only
        step = importlib.import_module(f"tutorial.{config.server}")
        return step.main([config.bind, str(config.echo_port)])

    logs.configure(config.log_level)
    loop = EventLoop(config)
    loop.handle_signals()
    try:
        loop.listen_tcp(EchoProtocol, config.echo_port, quiet_s=config.shutdown_grace_s)
        loop.listen_tcp(AppProtocol, config.app_port, max_content_bytes=config.max_content_bytes,
                        frame_deadline_s=config.frame_deadline_s,
                        max_reply_bytes=config.max_reply_bytes)
        loop.listen_tcp(GreetingProtocol, config.greet_port)
        loop.listen_udp(UdpEchoProtocol, config.udp_port, max_bytes=config.max_datagram_bytes,
                        rate_per_source=config.udp_rate_per_source)
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return 1
    log.info("server %s up, addresses %s", socket.gethostname(), ", ".join(local_addresses()))
    for listener in loop.listeners:
        log.info("listening: %s", listener.describe())
    log.info("settings: %s", settings.describe(config))
    log.info("memory budget for buffered bytes: %d (%s)", loop.budget,
             "LAB_MEMORY_BUDGET_BYTES" if config.memory_budget_bytes
             else "a third of the memory limit")
    return loop.run()


if __name__ == "__main__":
    sys.exit(main())
