"""Entry point: ``python3 -m labserver`` serves; ``--healthcheck`` probes a running server.

The engine runs the health check in every server container every second (compose.yaml), so
that path imports only what the probes need (``health.main``); everything else, ``--help``
included, is the command line's (``cli.main``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--healthcheck"]:
        from .health import main as check  # noqa: PLC0415 (the point: only when asked)

        return check()
    from .cli import main as serve  # noqa: PLC0415

    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
