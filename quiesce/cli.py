"""The ``quiesce`` command: one entry point, one module per subcommand.

Each module in :mod:`quiesce.commands` exposes ``register(subparsers)``; heavy
imports (kopf, the kubernetes client, aiohttp) happen inside the subcommand's
``run`` so that ``quiesce sidecar`` never pays for the operator's libraries.
The subcommand modules themselves are imported by name, and ``quiesce sidecar``
imports only its own: its start is paid in every pod (the operator's command
module and settings alone were ~30 ms of it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from quiesce import __version__

SUBCOMMANDS = ("operator", "sidecar", "plan", "lint", "status", "uninject", "demo")


def build_parser(subcommands: Sequence[str] = SUBCOMMANDS) -> argparse.ArgumentParser:
    """The parser with ``subcommands`` (by module name in :mod:`quiesce.commands`)."""
    parser = argparse.ArgumentParser(
        prog="quiesce",
        description="Make pods leave their load balancers before they stop.",
    )
    parser.add_argument("--version", action="version", version=f"quiesce {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in subcommands:
        importlib.import_module(f"quiesce.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else list(argv)
    only_sidecar = args_in[:1] == ["sidecar"]
    parser = build_parser(("sidecar",) if only_sidecar else SUBCOMMANDS)
    args = parser.parse_args(args_in)
    code = args.func(args)
    assert isinstance(code, int)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
