"""Subcommands of ``quiesce``; each module has ``register(subparsers)``."""

import argparse
import sys
from collections.abc import Callable


def not_implemented(name: str, issue: str) -> Callable[[argparse.Namespace], int]:
    """A ``run`` for a subcommand that is not built yet: says so, exits 2."""

    def run(_args: argparse.Namespace) -> int:
        print(f"quiesce {name}: not implemented yet ({issue}).", file=sys.stderr)
        return 2

    return run
