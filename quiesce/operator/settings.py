"""The operator's settings: what it watches, how it writes, its safety switches.

Frozen and typed, nested by concern as kopf's own settings; each field says its
unit, default and why. These defaults are the only ones: ``quiesce operator``'s
flags default to them (a test compares the two), and environment variables are
fallbacks for a few, so a Helm chart can set either.

Cheap to import (no plan, no configuration parser): the CLI reads the defaults
here while it builds its parser, for every ``quiesce`` command.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from quiesce import values

if TYPE_CHECKING:
    from quiesce import config as configuration

FIELD_MANAGER: Final = "quiesce"
ENV_NAMESPACES: Final = "QUIESCE_NAMESPACES"
ENV_DISABLED: Final = "QUIESCE_DISABLED"
ENV_DRY_RUN: Final = "QUIESCE_DRY_RUN"
ENV_PRIORITY: Final = "QUIESCE_PRIORITY"
ENV_POD_NAMESPACE: Final = "POD_NAMESPACE"
DEFAULT_WEBHOOK_SECRET: Final = "quiesce-system/quiesce-webhook-cert"


def default_priority(hostname: str | None = None) -> int:
    """A stable priority from the host name (the pod name): distinct per replica."""
    name = hostname or socket.gethostname()
    return int(hashlib.sha256(name.encode()).hexdigest()[:6], 16) + 1


def _default_config() -> configuration.Config:
    # Imported here: the configuration pulls in the plan (~30 ms), which building the CLI
    # parser does not need.
    from quiesce import config as configuration

    return configuration.Config()


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    """Webhook mode: the Pod mutating webhook, its certificate, its scan (``docs/webhook.md``).

    Durations are seconds (floats); the flags take Go durations (``1m``, ``8760h``).
    """

    enabled: bool = False
    """Serve the Pod mutating webhook (``--webhook``). Default off: template mode only."""

    url: str | None = None
    """The URL the API server calls, e.g. ``https://198.18.0.1:9443`` (the rig: no
    kube-proxy). Default none: ``service`` is used."""

    service: str = "quiesce-system/quiesce-webhook:443"
    """``namespace/name:port`` of the Service in front of the replicas. Default the chart's,
    ``quiesce-system/quiesce-webhook:443``."""

    host: str = "0.0.0.0"
    """Address the webhook server listens on. Default all interfaces."""

    port: int = 9443
    """Port the webhook server listens on. Default 9443 (unprivileged)."""

    name: str = "quiesce"
    """Name of the MutatingWebhookConfiguration the operator keeps up to date. Default
    ``quiesce``."""

    cert_secret: str = DEFAULT_WEBHOOK_SECRET
    """``namespace/name`` of the Secret holding the serving certificate and CA, shared by
    every replica. Default ``quiesce-system/quiesce-webhook-cert``."""

    cert_provided: bool = False
    """The Secret is kept by someone else (cert-manager): read and check it, never write it.
    Default off: the operator generates and rotates it."""

    cert_validity: float = 365 * 86400.0
    """Lifetime of a generated serving certificate, seconds. Default one year (8760h);
    renewed when a third is left."""

    cert_check: float = 60.0
    """Seconds between reads of the certificate Secret (renewal, other replicas' rotations,
    a provided certificate's renewal). Default 60 (1m): a rotation reaches every replica
    within a minute, for one GET a minute."""

    namespace_label: str = "quiesce.dev/webhook=enabled"
    """``key=value`` (or ``key``) a Namespace needs for its pods to go through the webhook;
    empty = every namespace. Default opt-in, as mesh injectors do: a pod creation in a
    namespace that never asked never waits on quiesce."""

    exclude_namespaces: tuple[str, ...] = ("kube-system",)
    """Namespaces never sent to the webhook, besides the operator's own. Default kube-system
    (``--webhook-exclude-namespace`` adds to it)."""

    timeout: int = 3
    """``timeoutSeconds`` of the webhook, seconds (Kubernetes allows 1 to 30). Default 3: an
    injection takes milliseconds, and a hung webhook delays every pod creation in its
    namespaces by this much."""

    failure_policy: str = "Ignore"
    """``Ignore`` (default: pods are created without the sidecar when the webhook is down,
    and the miss is counted) or ``Fail`` (pods are refused instead)."""

    reinvocation: str = "IfNeeded"
    """``reinvocationPolicy``: ``IfNeeded`` (default: a later webhook that adds
    ``quiesce.dev/inject`` still gets the pod injected; costs a second, no-op call per
    injected pod) or ``Never`` (one call per pod)."""

    scan_interval: float = 60.0
    """Seconds between scans for pods created without the sidecar while the webhook was
    unreachable (counted and reported). Default 60 (1m); 0 = no scan."""

    strict: bool = False
    """Deny pods whose ``quiesce.dev/*`` annotations are invalid (``--strict``). Default off:
    the pod is created without the sidecar and the user gets an admission warning."""


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    """Everything that shapes one operator process."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (kopf globs allowed). Default: none given = all namespaces."""

    config: configuration.Config = dataclasses.field(default_factory=_default_config)
    """The cluster-wide configuration (plan defaults, sidecar, consul), as ``quiesce plan
    --defaults`` reads it. Default: built-in defaults."""

    config_path: str | None = None
    """Where ``config`` came from, for logs. Default: none."""

    dry_run: bool = False
    """Report intended writes as Events, write nothing. Default off."""

    disabled: bool = False
    """Global kill switch: watch, but write nothing and post nothing. Default off.
    The per-namespace switch is the label ``quiesce.dev/disabled=true``."""

    kubeconfig: str | None = None
    """Kubeconfig file. Default: in-cluster service account, else ``$KUBECONFIG``."""

    log_format: str = "text"
    """``text`` or ``json`` (one object per line, for log pipelines). Default text."""

    verbose: bool = False
    """Debug logging. Default off."""

    peering: str | None = None
    """kopf peering name for HA; replicas with the same name elect the highest priority.
    Default: none = standalone (one replica only)."""

    priority: int = dataclasses.field(default_factory=lambda: default_priority())
    """kopf peering priority; must differ per replica (equal priorities pause both).
    Default: derived from the host name, the pod name (see :func:`default_priority`)."""

    liveness: str | None = None
    """kopf's liveness endpoint URL, e.g. ``http://0.0.0.0:8080/healthz``. Default: none."""

    metrics_port: int = 0
    """Port of ``/metrics`` (Prometheus). Default 0 = not served."""

    cluster_sidecars: str = "auto"
    """``auto`` (from the server version: native sidecars from 1.29), ``native`` or
    ``container``: what ``quiesce.dev/sidecar-mode: auto`` becomes. Default auto."""

    upgrades_per_minute: float = 10.0
    """Rate limit of ``quiesce.dev/auto-upgrade`` rollouts, cluster-wide, per minute.
    Default 10: an operator upgrade must not restart the fleet at once."""

    workers: int = 8
    """Concurrent API writes. Default 8: enough for 1,000 workloads in seconds, gentle on
    the API server. No flag."""

    webhook: WebhookSettings = dataclasses.field(default_factory=WebhookSettings)
    """Webhook mode (the ``--webhook*`` flags and ``--strict``). Default off."""

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def operator_namespace(self) -> str:
        """The operator's own namespace (excluded from the webhook): ``$POD_NAMESPACE``, else
        the certificate Secret's namespace."""
        return os.environ.get(ENV_POD_NAMESPACE) or self.webhook.cert_secret.partition("/")[0]


def env_namespaces(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    raw = environ.get(ENV_NAMESPACES, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def env_flag(name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """A boolean environment variable; unset or empty is false.

    The one boolean grammar (:func:`quiesce.values.parse_bool`, the annotations' own), so
    ``QUIESCE_DRY_RUN=t`` is on as ``quiesce.dev/inject: "t"`` is; anything else is a
    ValueError naming the variable, its value and what is expected.
    """
    raw = environ.get(name, "")
    if not raw.strip():
        return False
    try:
        return values.parse_bool(raw)
    except ValueError:
        raise ValueError(env_error(name, raw, values.BOOL_EXPECTED)) from None


def env_priority(environ: Mapping[str, str] = os.environ) -> int | None:
    """``$QUIESCE_PRIORITY`` (like ``--priority``), None when unset or empty."""
    raw = environ.get(ENV_PRIORITY, "")
    if not raw.strip():
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(env_error(ENV_PRIORITY, raw, "an integer, distinct per replica")) from None


def env_error(name: str, raw: str, expected: str) -> str:
    """A bad environment variable in the plan's words."""
    from quiesce import plan as plans

    return str(plans.FieldError(name, raw, expected))
