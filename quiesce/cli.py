"""The ``quiesce`` command: one entry point, one module per subcommand.

Each module in :mod:`quiesce.commands` exposes ``register(subparsers)``; heavy
imports (kopf, the kubernetes client, aiohttp) happen inside the subcommand's
``run`` so that ``quiesce sidecar`` never pays for the operator's libraries.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from quiesce import __version__
from quiesce.commands import demo, lint, operator, plan, sidecar, status, uninject

SUBCOMMANDS = (operator, sidecar, plan, lint, status, uninject, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quiesce",
        description="Make pods leave their load balancers before they stop.",
    )
    parser.add_argument("--version", action="version", version=f"quiesce {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
