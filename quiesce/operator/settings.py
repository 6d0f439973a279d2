"""The operator's settings: what it watches, how it writes, its safety switches.

Frozen and typed, as kopf's own settings; each field says its default and why.
Built from the command line (``quiesce operator``) with environment variables
as fallbacks, so a Helm chart can set either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
from typing import Final

from quiesce import config as configuration

FIELD_MANAGER: Final = "quiesce"
ENV_NAMESPACES: Final = "QUIESCE_NAMESPACES"
ENV_DISABLED: Final = "QUIESCE_DISABLED"
ENV_DRY_RUN: Final = "QUIESCE_DRY_RUN"
ENV_PRIORITY: Final = "QUIESCE_PRIORITY"


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    """Everything that shapes one operator process."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (kopf globs allowed). Default: none given = all namespaces."""

    config: configuration.Config = dataclasses.field(default_factory=configuration.Config)
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

    priority: int = 0
    """kopf peering priority; must differ per replica (equal priorities pause both).
    Default: derived from the host name (see :func:`default_priority`)."""

    liveness: str | None = None
    """kopf's liveness endpoint URL, e.g. ``http://0.0.0.0:8080/healthz``. Default: none."""

    metrics_port: int = 0
    """Port of ``/metrics`` (Prometheus). Default 0 = not served."""

    cluster_sidecars: str = "auto"
    """``auto`` (from the server version: native sidecars from 1.29), ``native`` or
    ``container``: what ``quiesce.dev/sidecar-mode: auto`` becomes. Default auto."""

    upgrades_per_minute: float = 10.0
    """Rate limit of ``quiesce.dev/auto-upgrade`` rollouts, cluster-wide. Default 10 a minute:
    an operator upgrade must not restart the fleet at once."""

    workers: int = 8
    """Concurrent API writes. Default 8: enough for 1,000 workloads in seconds, gentle on
    the API server."""

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def default_priority(hostname: str | None = None) -> int:
    """A stable priority from the host name (the pod name): distinct per replica."""
    name = hostname or socket.gethostname()
    return int(hashlib.sha256(name.encode()).hexdigest()[:6], 16) + 1


def env_namespaces() -> tuple[str, ...]:
    raw = os.environ.get(ENV_NAMESPACES, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
