"""``quiesce operator``: run the kopf operator that injects the quiesce sidecar."""

from __future__ import annotations

import argparse

from quiesce.commands import not_implemented


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "operator",
        help="run the kopf operator that injects the quiesce sidecar",
        description="Run the kopf operator that injects the quiesce sidecar.",
    )
    parser.set_defaults(func=not_implemented("operator", "issue 5"))
