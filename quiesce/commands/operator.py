"""``quiesce operator``: run the kopf operator that injects the quiesce sidecar.

Thin: flags and environment variables become :class:`OperatorSettings`; kopf
and the kubernetes client are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Run the operator: it watches Deployments, StatefulSets and DaemonSets with
quiesce.dev/inject and patches their pod template (server-side apply, field
manager "quiesce"): the sidecar, a preStop httpGet on the target containers,
terminationGracePeriodSeconds from the plan. Removing quiesce.dev/inject
restores the original template. `quiesce plan --defaults FILE` shows exactly
what it will do with the same configuration file.

Safety switches: --dry-run (report as Events, write nothing), --disabled (or
QUIESCE_DISABLED=true) for the whole cluster, the label
quiesce.dev/disabled=true on a Namespace for that namespace.
Environment: QUIESCE_NAMESPACES=a,b (like --namespace), QUIESCE_DRY_RUN,
QUIESCE_DISABLED, QUIESCE_PRIORITY (like --priority), KUBECONFIG.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "operator",
        help="run the kopf operator that injects the quiesce sidecar",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (kopf globs allowed); may be repeated",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument(
        "--config", metavar="FILE", help="the configuration file (plan, sidecar, consul)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="report intended changes as Events; write nothing"
    )
    parser.add_argument(
        "--disabled", action="store_true", help="kill switch: watch, but change nothing"
    )
    parser.add_argument("--kubeconfig", metavar="FILE", help="default: in-cluster, $KUBECONFIG")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--peering",
        metavar="NAME",
        help="kopf peering name for HA (replicas elect the highest priority); default standalone",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        metavar="N",
        help="peering priority, distinct per replica (default: derived from the host name)",
    )
    parser.add_argument(
        "--liveness", metavar="URL", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=0, metavar="PORT", help="serve /metrics (0: off)"
    )
    parser.add_argument(
        "--cluster-sidecars",
        choices=("auto", "native", "container"),
        default="auto",
        help="what sidecar-mode auto becomes (default: from the server version)",
    )
    parser.add_argument(
        "--upgrades-per-minute",
        type=float,
        default=10.0,
        metavar="N",
        help="rate limit of quiesce.dev/auto-upgrade rollouts (default 10)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from quiesce import config as configuration
    from quiesce import plan as plans
    from quiesce.operator import runner, settings

    config = configuration.Config()
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as handle:
                config = configuration.load_config(handle.read())
        except OSError as exc:
            print(f"quiesce operator: cannot read --config {args.config}: {exc}", file=sys.stderr)
            return 2
        except plans.PlanError as exc:
            print(f"quiesce operator: {args.config}: invalid configuration:", file=sys.stderr)
            for error in exc.errors:
                print(f"  {error}", file=sys.stderr)
            return 2
    namespaces = tuple(args.namespace) or (() if args.all_namespaces else settings.env_namespaces())
    priority = args.priority
    if priority is None and os.environ.get(settings.ENV_PRIORITY, "").strip():
        priority = int(os.environ[settings.ENV_PRIORITY])
    operator_settings = settings.OperatorSettings(
        namespaces=namespaces,
        config=config,
        config_path=args.config,
        dry_run=args.dry_run or settings.env_flag(settings.ENV_DRY_RUN),
        disabled=args.disabled or settings.env_flag(settings.ENV_DISABLED),
        kubeconfig=args.kubeconfig,
        log_format=args.log_format,
        verbose=args.verbose,
        peering=args.peering,
        priority=settings.default_priority() if priority is None else priority,
        liveness=args.liveness,
        metrics_port=args.metrics_port,
        cluster_sidecars=args.cluster_sidecars,
        upgrades_per_minute=args.upgrades_per_minute,
    )
    return runner.run(operator_settings)
