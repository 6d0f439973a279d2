"""The sidecar's configuration, read once from the environment the operator injects.

Everything the sidecar does is decided by the ShutdownPlan (``QUIESCE_PLAN``,
computed by the operator from the annotations) plus facts about the pod
(downward API) and where Consul and the API server are. Overrides that only
tests and unusual clusters need are documented on each field.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# The plan's model and codec only (standard library, a few ms): never its builder.
from quiesce import contract, values
from quiesce.plan import codec, model

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

ConsulBackendName = Literal["auto", "agent", "catalog", "none"]
SidecarMode = Literal["native", "container"]


class SettingsError(ValueError):
    """An environment variable is missing or malformed; names the variable and the value."""


@dataclass(frozen=True, kw_only=True)
class ConsulSettings:
    """Where Consul is and how to talk to it, read as Consul's own CLI reads it."""

    backend: ConsulBackendName = "auto"
    """``QUIESCE_CONSUL_BACKEND``: ``auto`` (agent API for instances on the agent's node,
    catalog API for others, e.g. consul-k8s ``<node>-virtual``), ``agent``, ``catalog``, or
    ``none`` (Kubernetes-only services). Default ``auto``; ``none`` when no
    ``CONSUL_HTTP_ADDR`` is set."""
    address: str = "127.0.0.1:8500"
    """``CONSUL_HTTP_ADDR``: ``host:port`` or ``scheme://host:port``."""
    scheme: str = "http"
    """From ``CONSUL_HTTP_ADDR``'s scheme or ``CONSUL_HTTP_SSL=true``."""
    token: str | None = None
    """``CONSUL_HTTP_TOKEN``, or the contents of ``CONSUL_HTTP_TOKEN_FILE`` (the file wins)."""
    ca_file: str | None = None
    """``CONSUL_CACERT``: CA bundle to verify Consul's certificate."""
    verify: bool = True
    """``CONSUL_HTTP_SSL_VERIFY`` (default true)."""
    client_cert: str | None = None
    """``CONSUL_CLIENT_CERT`` (with ``CONSUL_CLIENT_KEY``) for mutual TLS."""
    client_key: str | None = None
    request_timeout: float = 2.0
    """``QUIESCE_CONSUL_TIMEOUT``: seconds per Consul request (default 2; always capped by
    what is left of the deadline)."""

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


@dataclass(frozen=True, kw_only=True)
class KubeSettings:
    """How the sidecar reaches the API server (aiohttp and the service-account token)."""

    host: str | None = None
    """``KUBERNETES_SERVICE_HOST``; unset means the API checks are skipped."""
    port: int = 443
    """``KUBERNETES_SERVICE_PORT``."""
    scheme: str = "https"
    """``QUIESCE_KUBE_SCHEME``: ``http`` only for test API servers without TLS."""
    service_account_dir: str = SERVICE_ACCOUNT_DIR
    """``QUIESCE_SERVICE_ACCOUNT_DIR``: holds ``token`` and ``ca.crt``."""
    timeout: float = 2.0
    """``QUIESCE_KUBE_TIMEOUT``: seconds per API request (capped by the deadline)."""

    @property
    def base_url(self) -> str | None:
        if not self.host:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the sidecar needs, immutable once started."""

    plan: model.ShutdownPlan
    """``QUIESCE_PLAN``: the operator's plan, read by :func:`load_plan`."""
    token: str | None = None
    """``QUIESCE_TOKEN``: required value of the ``X-Quiesce-Token`` header on /prestop.
    Unset disables the check (only for local experiments; the operator always sets it)."""
    pod_name: str = ""
    pod_namespace: str = ""
    pod_uid: str = ""
    pod_ip: str = ""
    host_ip: str = ""
    """``HOST_IP``: the node's address: /prestop's allowed source, probes' source."""
    mode: SidecarMode = "container"
    """``QUIESCE_SIDECAR_MODE``: ``native`` (init container with restartPolicy Always,
    signalled after the app is gone) or ``container`` (signalled with the app)."""
    log_format: Literal["json", "text"] = "json"
    check_source: bool = True
    """``QUIESCE_CHECK_SOURCE``: accept /prestop only from the node's IP or loopback.
    ``false`` for CNIs whose kubelet traffic comes from another address."""
    app_container_ids: tuple[str, ...] | None = None
    """``QUIESCE_APP_CONTAINER_IDS``: comma-separated container IDs of the app containers,
    instead of reading them from the pod's status (tests, or no API access)."""
    listen_host: str = "0.0.0.0"
    """``QUIESCE_LISTEN_HOST``."""
    idle_sample_interval: float = 5.0
    """``QUIESCE_IDLE_SAMPLE_INTERVAL``: seconds between socket-table samples while idle
    (feeds the traffic rate λ of the adaptive quiet window). Default 5: the counters
    λ uses are cumulative, so coarser sampling loses little, and each dump walks the
    kernel's whole TCP hash table (~0.4 ms per address family, whatever the pod has)."""
    poll_interval: float = 0.1
    """``QUIESCE_POLL_INTERVAL``: seconds between socket-table samples during a sequence."""
    proc_root: str = "/proc"
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    kube: KubeSettings = field(default_factory=KubeSettings)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return values.parse_bool(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected {values.BOOL_EXPECTED}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r}: expected a positive number of seconds")
    return value


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def consul_from_env(env: Mapping[str, str]) -> ConsulSettings:
    """Consul settings exactly as ``consul`` CLI reads them, plus quiesce's backend choice."""
    raw_addr = env.get(contract.CONSUL_HTTP_ADDR_ENV, "")
    scheme = "https" if _bool(env, "CONSUL_HTTP_SSL", False) else "http"
    address = raw_addr or "127.0.0.1:8500"
    if "://" in address:
        given_scheme, address = address.split("://", 1)
        if not env.get("CONSUL_HTTP_SSL"):
            scheme = given_scheme
    address = address.rstrip("/")
    if ":" not in address.rsplit("]", 1)[-1]:
        address += ":443" if scheme == "https" else ":8500"
    try:
        int(address.rsplit(":", 1)[1])
    except ValueError:
        raise SettingsError(f"CONSUL_HTTP_ADDR={raw_addr!r}: expected host:port") from None
    token = env.get("CONSUL_HTTP_TOKEN") or None
    token_file = env.get(contract.CONSUL_HTTP_TOKEN_FILE_ENV)
    if token_file:
        try:
            token = _read_file(token_file) or None
        except OSError as exc:
            raise SettingsError(f"CONSUL_HTTP_TOKEN_FILE={token_file!r}: {exc.strerror}") from None
    backend = env.get("QUIESCE_CONSUL_BACKEND", "").strip().lower()
    if not backend:
        backend = "auto" if raw_addr else "none"
    if backend not in ("auto", "agent", "catalog", "none"):
        raise SettingsError(
            f"QUIESCE_CONSUL_BACKEND={backend!r}: expected auto, agent, catalog or none"
        )
    return ConsulSettings(
        backend=backend,  # type: ignore[arg-type]
        address=address,
        scheme=scheme,
        token=token,
        ca_file=env.get(contract.CONSUL_CACERT_ENV) or None,
        verify=_bool(env, "CONSUL_HTTP_SSL_VERIFY", True),
        client_cert=env.get("CONSUL_CLIENT_CERT") or None,
        client_key=env.get("CONSUL_CLIENT_KEY") or None,
        request_timeout=_float(env, "QUIESCE_CONSUL_TIMEOUT", 2.0),
    )


def kube_from_env(env: Mapping[str, str]) -> KubeSettings:
    port_raw = env.get("KUBERNETES_SERVICE_PORT", "443") or "443"
    try:
        port = int(port_raw)
    except ValueError:
        raise SettingsError(f"KUBERNETES_SERVICE_PORT={port_raw!r}: expected a port") from None
    scheme = env.get("QUIESCE_KUBE_SCHEME", "https")
    if scheme not in ("http", "https"):
        raise SettingsError(f"QUIESCE_KUBE_SCHEME={scheme!r}: expected http or https")
    return KubeSettings(
        host=env.get("KUBERNETES_SERVICE_HOST") or None,
        port=port,
        scheme=scheme,
        service_account_dir=env.get("QUIESCE_SERVICE_ACCOUNT_DIR", SERVICE_ACCOUNT_DIR),
        timeout=_float(env, "QUIESCE_KUBE_TIMEOUT", 2.0),
    )


def load_plan(raw: str) -> model.ShutdownPlan:
    """Parse ``QUIESCE_PLAN`` with the plan's own codec."""
    try:
        return codec.from_json(raw)
    except ValueError as exc:
        raise SettingsError(f"{contract.PLAN_ENV}: {exc}") from None


def from_env(
    env: Mapping[str, str] | None = None, *, plan: model.ShutdownPlan | None = None
) -> Settings:
    """Read every setting from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    if plan is None:
        raw = env.get(contract.PLAN_ENV)
        if not raw:
            raise SettingsError(
                f"{contract.PLAN_ENV} is not set: the operator injects the plan as JSON"
            )
        plan = load_plan(raw)
    mode = env.get(contract.SIDECAR_MODE_ENV, "container") or "container"
    if mode not in ("native", "container"):
        raise SettingsError(f"QUIESCE_SIDECAR_MODE={mode!r}: expected native or container")
    log_format = env.get(contract.LOG_FORMAT_ENV, "json") or "json"
    if log_format not in ("json", "text"):
        raise SettingsError(f"QUIESCE_LOG_FORMAT={log_format!r}: expected json or text")
    ids_raw = env.get("QUIESCE_APP_CONTAINER_IDS")
    ids = tuple(_strip_runtime(i) for i in ids_raw.split(",") if i.strip()) if ids_raw else None
    return Settings(
        plan=plan,
        token=env.get(contract.TOKEN_ENV) or None,
        pod_name=env.get(contract.POD_NAME_ENV, ""),
        pod_namespace=env.get(contract.POD_NAMESPACE_ENV, ""),
        pod_uid=env.get(contract.POD_UID_ENV, ""),
        pod_ip=env.get(contract.POD_IP_ENV, ""),
        host_ip=env.get(contract.HOST_IP_ENV, ""),
        mode=mode,  # type: ignore[arg-type]
        log_format=log_format,  # type: ignore[arg-type]
        check_source=_bool(env, "QUIESCE_CHECK_SOURCE", True),
        app_container_ids=ids,
        listen_host=env.get("QUIESCE_LISTEN_HOST", "0.0.0.0") or "0.0.0.0",
        idle_sample_interval=_float(env, "QUIESCE_IDLE_SAMPLE_INTERVAL", 5.0),
        poll_interval=_float(env, "QUIESCE_POLL_INTERVAL", 0.1),
        proc_root=env.get("QUIESCE_PROC_ROOT", "/proc") or "/proc",
        consul=consul_from_env(env),
        kube=kube_from_env(env),
    )


def _strip_runtime(container_id: str) -> str:
    """``containerd://abc`` -> ``abc`` (the pod status form) ."""
    return container_id.strip().split("://", 1)[-1]


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy with some fields changed (tests)."""
    return dataclasses.replace(settings, **changes)
