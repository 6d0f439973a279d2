"""``quiesce demo``: run the local demo on the real-component rig."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the local demo on the real-component rig",
        description="Start the rig (real kube-apiserver, Consul, HAProxy; built on first use), "
        "show the load balancer's discovery lag that quiesce waits out, and tear it all down. "
        "Needs root (network namespaces).",
    )
    parser.add_argument(
        "--discovery-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="HAProxy's Consul DNS resolution interval (default: 5)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from quiesce.rig import demo, errors

    try:
        return demo.run(discovery_interval=args.discovery_interval)
    except errors.RigError as exc:
        print(f"quiesce demo: {exc}")
        return 1
