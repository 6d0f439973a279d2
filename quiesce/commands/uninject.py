"""``quiesce uninject``: restore every injected workload (run before removing quiesce)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "uninject",
        help="restore every injected workload's original pod template",
        description="Restore the original pod template of every workload quiesce injected "
        "(the operator's own restore, as when quiesce.dev/inject is removed). Run it before "
        "removing quiesce; the Helm chart's pre-delete hook does. Exit 0 when everything "
        "was restored.",
    )
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all", action="store_true", help="every namespace")
    scope.add_argument(
        "-n", "--namespace", action="append", metavar="NS", help="only this namespace (repeatable)"
    )
    parser.add_argument(
        "--stop-operator",
        metavar="NS/NAME",
        help="first scale the operator's StatefulSet to 0 and wait for it",
    )
    parser.add_argument(
        "--delete-webhook",
        metavar="NAME",
        help="also delete this MutatingWebhookConfiguration (webhook mode)",
    )
    parser.add_argument("--kubeconfig", metavar="FILE", help="default: in-cluster, $KUBECONFIG")
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the operator to stop (default 120)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from quiesce.operator import apply, metrics, uninject

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    client = apply.Client.load(args.kubeconfig, metrics.Metrics())
    try:
        if args.stop_operator:
            namespace, _, name = args.stop_operator.partition("/")
            if not name:
                print(
                    f"quiesce uninject: --stop-operator {args.stop_operator!r}: expected "
                    "NAMESPACE/NAME",
                    file=sys.stderr,
                )
                return 2
            uninject.stop_operator(client, namespace, name, timeout=args.timeout)
        report = uninject.restore_all(client, None if args.all else args.namespace)
        if args.delete_webhook:
            uninject.delete_webhook(client, args.delete_webhook)
    except (apply.ApiError, TimeoutError) as exc:
        print(f"quiesce uninject: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    for ref in report.restored:
        print(f"restored {ref}")
    print(
        f"restored {len(report.restored)} workload(s)"
        + (f"; {len(report.failed)} failed: {'; '.join(report.failed)}" if report.failed else "")
    )
    return 0 if report.ok else 1
