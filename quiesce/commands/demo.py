"""``quiesce demo``: a rolling update under load on the real-component rig.

The rig (:mod:`quiesce.rig`) is test infrastructure that only a source checkout has: the
wheel and the image leave it out (design, "Rig placement"). So in an installed quiesce the
command says where the demo runs instead of failing on an import.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

NO_RIG: Final = (
    "quiesce demo: the demo runs on the test rig, which only a source checkout has "
    "(it is not in the package or the image). Clone the repository and run `./dev demo`."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the local demo: a rolling update under load on the rig",
        description="Start the rig (real kube-apiserver, Consul, HAProxy; built on first use) "
        "with the node agent and the quiesce operator, roll a Consul-registered app under load "
        "once per stop policy (no hook, preStop sleep 5, a long sleep, quiesce) and print the "
        "failures side by side. Needs root (network namespaces).",
    )
    parser.add_argument(
        "--discovery-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="HAProxy's Consul DNS resolution interval (default: 5)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=50.0,
        metavar="RPS",
        help="requests per second through HAProxy (default: 50)",
    )
    parser.add_argument(
        "--redispatch",
        action="store_true",
        help="HAProxy with option redispatch (default: HAProxy's defaults)",
    )
    parser.add_argument(
        "--policy",
        action="append",
        dest="policies",
        metavar="NAME",
        choices=("no-hook", "sleep-5", "sleep-long", "quiesce"),
        help="run only these policies (repeatable; default: all four)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("demo-output"),
        metavar="DIR",
        help="where the plot and JSON go (default: ./demo-output)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        from quiesce.rig import demo, errors
    except ModuleNotFoundError as exc:
        if exc.name not in ("quiesce.rig", "quiesce.rig.demo", "quiesce.rig.errors"):
            raise  # the rig is there but one of its own imports is missing
        print(NO_RIG, file=sys.stderr)
        return 1

    try:
        return demo.run(
            discovery_interval=args.discovery_interval,
            rate=args.rate,
            redispatch=args.redispatch,
            policies=args.policies,
            output=args.output,
        )
    except (errors.RigError, TimeoutError) as exc:
        print(f"quiesce demo: {exc}")
        return 1
