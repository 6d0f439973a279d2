"""``quiesce operator``: run the kopf operator that injects the quiesce sidecar.

Thin: flags and environment variables become :class:`OperatorSettings`, whose
field defaults are the flags' defaults (one source: a test compares them); kopf
and the kubernetes client are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# Every `quiesce` command builds this parser, the sidecar's included: settings costs ~9 ms
# (measured; dataclasses and inspect, which the plan, lint and the sidecar load anyway),
# durations ~1 ms. The configuration and the plan stay out (settings imports them lazily).
from quiesce import durations
from quiesce.commands import configfile
from quiesce.operator import settings as settings_

if TYPE_CHECKING:
    from quiesce import config as configuration

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


def _defaults() -> dict[str, Any]:
    """OperatorSettings' plain field defaults, without running its factories (the
    configuration, the host name's priority: see :func:`build_settings`)."""
    return {
        field.name: field.default
        for field in dataclasses.fields(settings_.OperatorSettings)
        if field.default is not dataclasses.MISSING
    }


def _duration(seconds: float) -> str:
    return durations.format_seconds(seconds)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = _defaults()
    w = settings_.WebhookSettings()
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
        "--config",
        metavar="FILE",
        default=d["config_path"],
        help="the configuration file (plan, sidecar, consul)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        default=d["dry_run"],
        help="report intended changes as Events; write nothing",
    )
    parser.add_argument(
        "--disabled",
        action="store_true",
        default=d["disabled"],
        help="kill switch: watch, but change nothing",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        default=d["kubeconfig"],
        help="default: in-cluster, $KUBECONFIG",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=d["log_format"],
        help=f"(default {d['log_format']})",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=d["verbose"], help="debug logging"
    )
    parser.add_argument(
        "--peering",
        metavar="NAME",
        default=d["peering"],
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
        "--liveness",
        metavar="URL",
        default=d["liveness"],
        help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=d["metrics_port"],
        metavar="PORT",
        help=f"serve /metrics (0: off; default {d['metrics_port']})",
    )
    parser.add_argument(
        "--cluster-sidecars",
        choices=("auto", "native", "container"),
        default=d["cluster_sidecars"],
        help=f"what sidecar-mode auto becomes (default {d['cluster_sidecars']}: from the "
        "server version)",
    )
    parser.add_argument(
        "--upgrades-per-minute",
        type=float,
        default=d["upgrades_per_minute"],
        metavar="N",
        help="rate limit of quiesce.dev/auto-upgrade rollouts (default "
        f"{d['upgrades_per_minute']:g})",
    )
    hook = parser.add_argument_group("webhook mode (docs/webhook.md)")
    hook.add_argument(
        "--webhook", action="store_true", default=w.enabled, help="serve the Pod mutating webhook"
    )
    hook.add_argument(
        "--webhook-url",
        metavar="URL",
        default=w.url,
        help="URL the API server calls (e.g. https://198.18.0.1:9443); default: the Service",
    )
    hook.add_argument(
        "--webhook-service",
        metavar="NS/NAME:PORT",
        default=w.service,
        help=f"Service in front of the replicas (default {w.service})",
    )
    hook.add_argument("--webhook-host", default=w.host, help=f"listen address ({w.host})")
    hook.add_argument("--webhook-port", type=int, default=w.port, help=f"listen port ({w.port})")
    hook.add_argument(
        "--webhook-name", default=w.name, help=f"MutatingWebhookConfiguration name ({w.name})"
    )
    hook.add_argument(
        "--webhook-cert-secret",
        metavar="NS/NAME",
        default=w.cert_secret,
        help=f"Secret with the serving certificate and CA, shared by all replicas "
        f"(default {w.cert_secret})",
    )
    hook.add_argument(
        "--webhook-cert-provided",
        action="store_true",
        default=w.cert_provided,
        help="the Secret is kept by cert-manager or a person: check it, never write it",
    )
    hook.add_argument(
        "--webhook-cert-validity",
        metavar="DURATION",
        default=_duration(w.cert_validity),
        help="lifetime of a generated serving certificate (Go duration, default "
        f"{_duration(w.cert_validity)})",
    )
    hook.add_argument(
        "--webhook-cert-check",
        metavar="DURATION",
        default=_duration(w.cert_check),
        help=f"how often the Secret is read (default {_duration(w.cert_check)})",
    )
    hook.add_argument(
        "--webhook-namespace-label",
        metavar="KEY[=VALUE]",
        default=w.namespace_label,
        help=f"label a Namespace needs ('' = every namespace; default {w.namespace_label})",
    )
    hook.add_argument(
        "--webhook-exclude-namespace",
        action="append",
        default=[],
        metavar="NS",
        help=f"never inject here (besides {', '.join(w.exclude_namespaces)} and the operator's "
        "namespace, always); repeatable",
    )
    hook.add_argument(
        "--webhook-timeout",
        type=int,
        default=w.timeout,
        metavar="SECONDS",
        help=f"timeoutSeconds ({w.timeout})",
    )
    hook.add_argument(
        "--webhook-failure-policy",
        choices=("Ignore", "Fail"),
        default=w.failure_policy,
        help=f"({w.failure_policy})",
    )
    hook.add_argument(
        "--webhook-reinvocation",
        choices=("IfNeeded", "Never"),
        default=w.reinvocation,
        help=f"reinvocationPolicy (default {w.reinvocation}: a second, no-op call per "
        "injected pod)",
    )
    hook.add_argument(
        "--webhook-scan-interval",
        metavar="DURATION",
        default=_duration(w.scan_interval),
        help="how often pods created without the sidecar are looked for (0: never; default "
        f"{_duration(w.scan_interval)})",
    )
    hook.add_argument(
        "--strict",
        action="store_true",
        default=w.strict,
        help="deny pods with invalid quiesce.dev/* annotations (default: warn, no sidecar)",
    )
    parser.set_defaults(func=run)


#: timeoutSeconds of an admission webhook: the API server accepts 1 to 30.
MIN_TIMEOUT, MAX_TIMEOUT = 1, 30
#: What each duration flag expects, and why a zero makes no sense where it does not.
_DURATIONS: dict[str, str] = {
    "--webhook-cert-validity": "a Go duration greater than zero, such as 8760h",
    "--webhook-cert-check": (
        "a Go duration greater than zero, such as 1m (the Secret is read this often)"
    ),
    "--webhook-scan-interval": "a Go duration, 0 for no scan, such as 1m",
}


def _error(flag: str, value: str, expected: str, *, problem: str = "is invalid") -> str:
    """One bad flag in the plan's words: the flag, the raw value, what is expected."""
    from quiesce import plan as plans

    return str(plans.FieldError(flag, value, expected, problem))


def _seconds(flag: str, text: str, errors: list[str], *, zero: bool = False) -> float:
    """A duration flag in seconds; a problem goes to ``errors`` (and 0 is returned)."""
    expected = _DURATIONS[flag]
    try:
        seconds = durations.to_seconds(durations.parse(text))
    except ValueError:
        errors.append(_error(flag, text, expected, problem="is not a duration"))
        return 0.0
    if seconds < 0 or (seconds == 0 and not zero):
        problem = "is negative" if seconds < 0 else "is zero"
        errors.append(_error(flag, text, expected, problem=problem))
    return seconds


class SettingsError(ValueError):
    """Flags or environment variables that make no settings; ``errors`` lists them all."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(errors))


def build_settings(
    args: argparse.Namespace,
    config: configuration.Config | None = None,
    environ: Mapping[str, str] = os.environ,
) -> settings_.OperatorSettings:
    """The settings of ``quiesce operator ARGS``; raises :class:`SettingsError`."""
    errors: list[str] = []
    validity = _seconds("--webhook-cert-validity", args.webhook_cert_validity, errors)
    check = _seconds("--webhook-cert-check", args.webhook_cert_check, errors)
    scan = _seconds("--webhook-scan-interval", args.webhook_scan_interval, errors, zero=True)
    if not MIN_TIMEOUT <= args.webhook_timeout <= MAX_TIMEOUT:
        errors.append(
            _error(
                "--webhook-timeout",
                str(args.webhook_timeout),
                f"a number of seconds from {MIN_TIMEOUT} to {MAX_TIMEOUT} (the API server's "
                "limits for timeoutSeconds)",
                problem="is out of range",
            )
        )
    namespaces = tuple(args.namespace) or (
        () if args.all_namespaces else settings_.env_namespaces(environ)
    )
    priority = args.priority
    switches: dict[str, bool] = {}
    for field, flag, name in (
        ("dry_run", args.dry_run, settings_.ENV_DRY_RUN),
        ("disabled", args.disabled, settings_.ENV_DISABLED),
    ):
        try:
            switches[field] = settings_.env_flag(name, environ) or flag
        except ValueError as exc:
            errors.append(str(exc))
    if priority is None:
        try:
            priority = settings_.env_priority(environ)
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise SettingsError(errors)
    webhook = settings_.WebhookSettings(
        enabled=args.webhook,
        url=args.webhook_url,
        service=args.webhook_service,
        host=args.webhook_host,
        port=args.webhook_port,
        name=args.webhook_name,
        cert_secret=args.webhook_cert_secret,
        cert_provided=args.webhook_cert_provided,
        cert_validity=validity,
        cert_check=check,
        namespace_label=args.webhook_namespace_label,
        exclude_namespaces=(
            *settings_.WebhookSettings().exclude_namespaces,
            *args.webhook_exclude_namespace,
        ),
        timeout=args.webhook_timeout,
        failure_policy=args.webhook_failure_policy,
        reinvocation=args.webhook_reinvocation,
        scan_interval=scan,
        strict=args.strict,
    )
    optional: dict[str, Any] = {}
    if config is not None:
        optional["config"] = config
    if priority is not None:
        optional["priority"] = priority
    return settings_.OperatorSettings(
        namespaces=namespaces,
        config_path=args.config,
        dry_run=switches["dry_run"],
        disabled=switches["disabled"],
        kubeconfig=args.kubeconfig,
        log_format=args.log_format,
        verbose=args.verbose,
        peering=args.peering,
        liveness=args.liveness,
        metrics_port=args.metrics_port,
        cluster_sidecars=args.cluster_sidecars,
        upgrades_per_minute=args.upgrades_per_minute,
        webhook=webhook,
        **optional,
    )


def run(args: argparse.Namespace) -> int:
    from quiesce import config as configuration
    from quiesce.operator import runner

    config = configuration.Config()
    if args.config:
        loaded = configfile.load("operator", "--config", args.config)
        if loaded is None:
            return 2
        config = loaded
    try:
        operator_settings = build_settings(args, config)
    except SettingsError as exc:
        for problem in exc.errors:
            print(f"quiesce operator: {problem}", file=sys.stderr)
        return 2
    return runner.run(operator_settings)
