"""``quiesce demo``: run the local demo: a rolling update under load on the rig."""

from __future__ import annotations

import argparse

from quiesce.commands import not_implemented


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the local demo: a rolling update under load on the rig",
        description="Run the local demo: a rolling update under load on the rig.",
    )
    parser.set_defaults(func=not_implemented("demo", "issue 7"))
