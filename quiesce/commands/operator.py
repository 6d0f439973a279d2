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

Webhook mode (--webhook, docs/webhook.md): also serve a Pod mutating
admission webhook that injects pods annotated quiesce.dev/inject (their
template's annotations) in namespaces labelled quiesce.dev/webhook=enabled,
from the same template builder; workloads are not touched.
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
    hook = parser.add_argument_group("webhook mode (docs/webhook.md)")
    hook.add_argument("--webhook", action="store_true", help="serve the Pod mutating webhook")
    hook.add_argument(
        "--webhook-url",
        metavar="URL",
        help="URL the API server calls (e.g. https://198.18.0.1:9443); default: the Service",
    )
    hook.add_argument(
        "--webhook-service",
        metavar="NS/NAME:PORT",
        default="quiesce-system/quiesce-webhook:443",
        help="Service in front of the replicas (default quiesce-system/quiesce-webhook:443)",
    )
    hook.add_argument("--webhook-host", default="0.0.0.0", help="listen address (all)")
    hook.add_argument("--webhook-port", type=int, default=9443, help="listen port (9443)")
    hook.add_argument(
        "--webhook-name", default="quiesce", help="MutatingWebhookConfiguration name (quiesce)"
    )
    hook.add_argument(
        "--webhook-cert-secret",
        metavar="NS/NAME",
        default="quiesce-system/quiesce-webhook-cert",
        help="Secret with the serving certificate and CA, shared by all replicas",
    )
    hook.add_argument(
        "--webhook-cert-provided",
        action="store_true",
        help="the Secret is kept by cert-manager or a person: check it, never write it",
    )
    hook.add_argument(
        "--webhook-cert-validity",
        metavar="DURATION",
        default="8760h",
        help="lifetime of a generated serving certificate (Go duration, default 8760h)",
    )
    hook.add_argument(
        "--webhook-cert-check",
        metavar="DURATION",
        default="1m",
        help="how often the Secret is read (default 1m)",
    )
    hook.add_argument(
        "--webhook-namespace-label",
        metavar="KEY[=VALUE]",
        default="quiesce.dev/webhook=enabled",
        help="label a Namespace needs ('' = every namespace; default quiesce.dev/webhook=enabled)",
    )
    hook.add_argument(
        "--webhook-exclude-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="never inject here (kube-system and the operator's namespace always); repeatable",
    )
    hook.add_argument(
        "--webhook-timeout", type=int, default=3, metavar="SECONDS", help="timeoutSeconds (3)"
    )
    hook.add_argument(
        "--webhook-failure-policy", choices=("Ignore", "Fail"), default="Ignore", help="(Ignore)"
    )
    hook.add_argument(
        "--webhook-reinvocation",
        choices=("IfNeeded", "Never"),
        default="IfNeeded",
        help="reinvocationPolicy (IfNeeded: a second, no-op call per injected pod)",
    )
    hook.add_argument(
        "--webhook-scan-interval",
        metavar="DURATION",
        default="1m",
        help="how often pods created without the sidecar are looked for (0: never; default 1m)",
    )
    hook.add_argument(
        "--strict",
        action="store_true",
        help="deny pods with invalid quiesce.dev/* annotations (default: warn, no sidecar)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from quiesce import config as configuration
    from quiesce import durations
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
    try:
        validity, check, scan = (
            durations.to_seconds(durations.parse(text))
            for text in (
                args.webhook_cert_validity,
                args.webhook_cert_check,
                args.webhook_scan_interval,
            )
        )
    except ValueError as exc:
        print(f"quiesce operator: invalid duration: {exc}", file=sys.stderr)
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
        webhook=args.webhook,
        webhook_url=args.webhook_url,
        webhook_service=args.webhook_service,
        webhook_host=args.webhook_host,
        webhook_port=args.webhook_port,
        webhook_name=args.webhook_name,
        webhook_cert_secret=args.webhook_cert_secret,
        webhook_cert_provided=args.webhook_cert_provided,
        webhook_cert_validity=validity,
        webhook_cert_check=check,
        webhook_namespace_label=args.webhook_namespace_label,
        webhook_exclude_namespaces=("kube-system", *args.webhook_exclude_namespace),
        webhook_timeout=args.webhook_timeout,
        webhook_failure_policy=args.webhook_failure_policy,
        webhook_reinvocation=args.webhook_reinvocation,
        webhook_scan_interval=scan,
        strict=args.strict,
    )
    return runner.run(operator_settings)
