"""``quiesce sidecar``: run the sidecar: serve /prestop and run the pod's shutdown."""

from __future__ import annotations

import argparse

from quiesce.commands import not_implemented


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sidecar",
        help="run the sidecar: serve /prestop and run the pod's shutdown",
        description="Run the sidecar: serve /prestop and run the pod's shutdown.",
    )
    parser.set_defaults(func=not_implemented("sidecar", "issue 6"))
