"""``quiesce lint``: find shutdown hazards in manifests and Dockerfiles."""

from __future__ import annotations

import argparse

from quiesce.commands import not_implemented


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="find shutdown hazards in manifests and Dockerfiles",
        description="Find shutdown hazards in manifests and Dockerfiles.",
    )
    parser.set_defaults(func=not_implemented("lint", "issue 9"))
