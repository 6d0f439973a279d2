"""``quiesce plan``: print the shutdown plan of workload manifests."""

from __future__ import annotations

import argparse

from quiesce.commands import not_implemented


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="print the shutdown plan of workload manifests",
        description="Print the shutdown plan of workload manifests.",
    )
    parser.set_defaults(func=not_implemented("plan", "issue 4"))
