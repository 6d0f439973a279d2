"""The cluster-wide operator configuration (the Helm values' ``config:``), typed and frozen.

The operator and ``quiesce plan --defaults FILE`` read the same file, so the
plan a user previews is exactly the one the operator computes. Only the
sections quiesce's plan and template builder need are defined (and validated)
here: ``plan`` (defaults for every workload, same short keys as the
annotations), ``sidecar``, ``consul`` and ``outerBudgets`` (the cluster's budgets
that can end a pod before its grace period: :mod:`quiesce.plan.outer`). Other
top-level sections belong to other parts of the operator and are left alone.

Example::

    plan:
      converge-max: 20s
    sidecar:
      image: ghcr.io/quiesce-dev/quiesce:0.1.0
      logFormat: json
    consul:
      address: http://$(HOST_IP):8500
      tokenSecret: {name: consul-acl-token, key: token}
      caSecret: {name: consul-ca, key: tls.crt}
    outerBudgets:
      nodeShutdown: {shutdownGracePeriod: 30s, shutdownGracePeriodCriticalPods: 10s}
      autoscalerMaxGracefulTermination: 10m   # the default; "off": no cluster-autoscaler
      nodeGroupDrainTimeout: 15m               # default: off
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, Final

from quiesce import __version__, plan
from quiesce.plan import fields, outer

DEFAULT_IMAGE: Final = f"ghcr.io/quiesce-dev/quiesce:{__version__}"
LOG_FORMATS: Final = ("json", "text")
PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")
OFF: Final = "off"
"""An outer budget's value for "this cluster has no such mechanism" (null and false too)."""
OUTER_KEYS: Final = ("nodeShutdown", "autoscalerMaxGracefulTermination", "nodeGroupDrainTimeout")
#: The KubeletConfiguration's own names, so its values can be copied as they are.
NODE_SHUTDOWN_KEYS: Final = (
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority",
)
PRIORITY_KEYS: Final = ("priority", "shutdownGracePeriodSeconds")


def _default_resources() -> dict[str, dict[str, str]]:
    return {"requests": {"cpu": "10m", "memory": "48Mi"}, "limits": {"memory": "96Mi"}}


class ConfigError(plan.PlanError):
    """The configuration file is malformed; ``errors`` names every bad key (``sidecar.image``)."""


@dataclasses.dataclass(frozen=True)
class SecretRef:
    """One key of a Secret in the workload's namespace, mounted read-only into the sidecar."""

    name: str
    key: str


@dataclasses.dataclass(frozen=True)
class SidecarConfig:
    """How the injected sidecar container looks."""

    image: str = DEFAULT_IMAGE
    """Sidecar image. Default: this quiesce version's image, so operator and sidecar agree
    on the plan format."""

    image_pull_policy: str = "IfNotPresent"
    """Kubernetes imagePullPolicy. Default IfNotPresent: the tag is immutable per release."""

    resources: Mapping[str, Mapping[str, str]] = dataclasses.field(
        default_factory=_default_resources
    )
    """Container resources. Default: requests 10m CPU / 48Mi, limit 96Mi: the sidecar idles
    under 40 MB RSS and must never be OOM-killed mid-shutdown; no CPU limit so throttling
    never delays a shutdown."""

    run_as_user: int = 65532
    """UID when not signalling (non-root). Default 65532, distroless's ``nonroot``."""

    log_format: str = "json"
    """``json`` (one object per line, for log pipelines) or ``text`` (for humans)."""


@dataclasses.dataclass(frozen=True)
class ConsulConfig:
    """Where the sidecar finds Consul and how it authenticates."""

    address: str = "http://$(HOST_IP):8500"
    """``CONSUL_HTTP_ADDR``. Default: the Consul client agent on the pod's node (Kubernetes
    expands ``$(HOST_IP)`` from the downward API)."""

    token_secret: SecretRef | None = None
    """Secret key holding the ACL token (``CONSUL_HTTP_TOKEN_FILE``). Default: none (no ACLs)."""

    ca_secret: SecretRef | None = None
    """Secret key holding the CA certificate for HTTPS (``CONSUL_CACERT``). Default: none."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything of the operator's configuration that shapes a plan or a pod template."""

    plan: plan.PlanDefaults = dataclasses.field(default_factory=plan.PlanDefaults)
    sidecar: SidecarConfig = dataclasses.field(default_factory=SidecarConfig)
    consul: ConsulConfig = dataclasses.field(default_factory=ConsulConfig)
    outer_budgets: outer.OuterBudgets = dataclasses.field(default_factory=outer.OuterBudgets)


def load_config(source: str | Mapping[str, Any] | None) -> Config:
    """Read the configuration from YAML text or an already parsed mapping; all errors at once."""
    if source is None:
        return Config()
    data: Any = source
    if isinstance(source, str):
        import yaml  # only here: the sidecar never loads the operator's configuration

        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise ConfigError(
                [plan.FieldError("config", source[:60], "YAML", f"is not valid YAML ({exc})")]
            ) from None
    if data is None:
        return Config()
    if not isinstance(data, Mapping):
        raise ConfigError([plan.FieldError("config", str(data)[:60], "a mapping", "is not one")])
    errors: list[plan.FieldError] = []
    defaults = plan.PlanDefaults()
    raw_plan = data.get("plan")
    if raw_plan is not None:
        try:
            defaults = plan.parse_defaults(raw_plan, where="plan")
        except plan.PlanError as exc:
            errors.extend(exc.errors)
    sidecar = _sidecar(_section(data, "sidecar", errors), errors)
    consul = _consul(_section(data, "consul", errors), errors)
    budgets = _outer_budgets(_section(data, "outerBudgets", errors), errors)
    if errors:
        raise ConfigError(errors)
    return Config(plan=defaults, sidecar=sidecar, consul=consul, outer_budgets=budgets)


def _section(
    data: Mapping[str, Any], name: str, errors: list[plan.FieldError], parent: str = ""
) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        where = f"{parent}.{name}" if parent else name
        errors.append(plan.FieldError(where, str(value), "a mapping", "is not a mapping"))
        return {}
    return value


def _check_keys(
    section: Mapping[str, Any], name: str, known: tuple[str, ...], errors: list[plan.FieldError]
) -> None:
    for key in section:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            expected = f"{name}.{hint[0]}" if hint else "one of " + ", ".join(known)
            errors.append(
                plan.FieldError(f"{name}.{key}", str(section[key]), expected, "is an unknown key")
            )


def _string(
    section: Mapping[str, Any],
    where: str,
    key: str,
    default: str,
    errors: list[plan.FieldError],
    choices: tuple[str, ...] = (),
) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or not value:
        errors.append(plan.FieldError(f"{where}.{key}", str(value), "a string", "is not a string"))
        return default
    if choices and value not in choices:
        errors.append(
            plan.FieldError(f"{where}.{key}", value, " or ".join(choices), "is not a choice")
        )
        return default
    return value


def _sidecar(section: Mapping[str, Any], errors: list[plan.FieldError]) -> SidecarConfig:
    base = SidecarConfig()
    _check_keys(
        section,
        "sidecar",
        ("image", "imagePullPolicy", "resources", "runAsUser", "logFormat"),
        errors,
    )
    resources = section.get("resources", base.resources)
    if not isinstance(resources, Mapping) or not all(
        isinstance(v, Mapping) and all(isinstance(q, str | int) for q in v.values())
        for v in resources.values()
    ):
        errors.append(
            plan.FieldError(
                "sidecar.resources",
                str(resources),
                "requests/limits as Kubernetes writes them",
                "is not a resources mapping",
            )
        )
        resources = base.resources
    uid = section.get("runAsUser", base.run_as_user)
    if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
        errors.append(
            plan.FieldError(
                "sidecar.runAsUser", str(uid), "a non-zero UID", "is not a non-root UID"
            )
        )
        uid = base.run_as_user
    return SidecarConfig(
        image=_string(section, "sidecar", "image", base.image, errors),
        image_pull_policy=_string(
            section, "sidecar", "imagePullPolicy", base.image_pull_policy, errors, PULL_POLICIES
        ),
        resources={str(k): {str(n): str(q) for n, q in v.items()} for k, v in resources.items()},
        run_as_user=uid,
        log_format=_string(section, "sidecar", "logFormat", base.log_format, errors, LOG_FORMATS),
    )


def _secret(
    section: Mapping[str, Any], key: str, errors: list[plan.FieldError]
) -> SecretRef | None:
    value = section.get(key)
    if value is None:
        return None
    if (
        isinstance(value, Mapping)
        and set(value) == {"name", "key"}
        and all(isinstance(v, str) and v for v in value.values())
    ):
        return SecretRef(name=value["name"], key=value["key"])
    errors.append(
        plan.FieldError(
            f"consul.{key}", str(value), "{name: <secret>, key: <key>}", "is not a Secret key"
        )
    )
    return None


def _consul(section: Mapping[str, Any], errors: list[plan.FieldError]) -> ConsulConfig:
    base = ConsulConfig()
    _check_keys(section, "consul", ("address", "tokenSecret", "caSecret"), errors)
    return ConsulConfig(
        address=_string(section, "consul", "address", base.address, errors),
        token_secret=_secret(section, "tokenSecret", errors),
        ca_secret=_secret(section, "caSecret", errors),
    )


def _outer_budgets(section: Mapping[str, Any], errors: list[plan.FieldError]) -> outer.OuterBudgets:
    base = outer.OuterBudgets()
    _check_keys(section, "outerBudgets", OUTER_KEYS, errors)
    shutdown = None
    if section.get("nodeShutdown") is not None:
        shutdown = _node_shutdown(_section(section, "nodeShutdown", errors, "outerBudgets"), errors)
    return outer.OuterBudgets(
        node_shutdown=shutdown,
        autoscaler_max_graceful_termination=_switchable(
            section,
            "autoscalerMaxGracefulTermination",
            base.autoscaler_max_graceful_termination,
            errors,
        ),
        node_group_drain_timeout=_switchable(
            section, "nodeGroupDrainTimeout", base.node_group_drain_timeout, errors
        ),
    )


def _switchable(
    section: Mapping[str, Any], key: str, default: int | None, errors: list[plan.FieldError]
) -> int | None:
    """A duration in nanoseconds; ``off`` or null: None; absent: the default."""
    if key not in section:
        return default
    value = section[key]
    if value is None or value is False or value == OFF:  # YAML 1.1 reads a bare off as false
        return None
    found = _duration(value, f"outerBudgets.{key}", errors, f', or "{OFF}"')
    return default if found is None else found


def _duration(value: Any, where: str, errors: list[plan.FieldError], also: str = "") -> int | None:
    """The plan's duration grammar (Go syntax, 0 to 6h); ``also`` names other accepted values."""
    text = fields.scalar_text(value)
    found: list[plan.FieldError] = []
    ns = None
    if text is None:
        found.append(
            plan.FieldError(where, str(value), fields.DURATION_EXPECTED, "is not a duration")
        )
    else:
        ns = fields.duration(where, text, found)
    errors.extend(dataclasses.replace(e, expected=e.expected + also) for e in found)
    return ns


def _node_shutdown(
    section: Mapping[str, Any], errors: list[plan.FieldError]
) -> outer.NodeShutdown | None:
    """The kubelet's graceful node shutdown settings, refused where the kubelet refuses them."""
    where = "outerBudgets.nodeShutdown"
    _check_keys(section, where, NODE_SHUTDOWN_KEYS, errors)
    durations_ns = {}
    for key in NODE_SHUTDOWN_KEYS[:2]:
        if key in section:
            durations_ns[key] = _duration(section[key], f"{where}.{key}", errors)
    if None in durations_ns.values():
        return None  # already reported
    total = durations_ns.get("shutdownGracePeriod") or 0
    critical = durations_ns.get("shutdownGracePeriodCriticalPods") or 0
    raw_entries = section.get("shutdownGracePeriodByPodPriority")
    if raw_entries is None:
        if critical > total:
            errors.append(
                plan.FieldError(
                    f"{where}.shutdownGracePeriodCriticalPods",
                    str(section["shutdownGracePeriodCriticalPods"]),
                    f"at most shutdownGracePeriod ({section.get('shutdownGracePeriod', '0s')})",
                    "is longer than the whole shutdown",
                )
            )
            return None
        return outer.NodeShutdown(total, critical)
    if durations_ns:
        errors.append(
            plan.FieldError(
                f"{where}.shutdownGracePeriodByPodPriority",
                str(raw_entries),
                "either it or shutdownGracePeriod/shutdownGracePeriodCriticalPods, as the "
                "kubelet requires",
                "is set together with shutdownGracePeriod",
            )
        )
        return None
    entries = _by_priority(raw_entries, f"{where}.shutdownGracePeriodByPodPriority", errors)
    return None if entries is None else outer.NodeShutdown(by_pod_priority=entries)


def _by_priority(
    raw: Any, where: str, errors: list[plan.FieldError]
) -> tuple[outer.PriorityGrace, ...] | None:
    expected = "a list of {priority: <int>, shutdownGracePeriodSeconds: <int >= 0>}"
    if not isinstance(raw, list) or not raw:
        errors.append(plan.FieldError(where, str(raw), expected, "is not a non-empty list"))
        return None
    entries = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            errors.append(plan.FieldError(at, str(item), expected, "is not a mapping"))
            continue
        _check_keys(item, at, PRIORITY_KEYS, errors)
        priority, seconds = item.get("priority"), item.get("shutdownGracePeriodSeconds")
        bad = [
            plan.FieldError(f"{at}.{key}", str(value), want, problem)
            for key, value, want, problem in (
                ("priority", priority, "an integer, as the kubelet's", "is not an integer"),
                (
                    "shutdownGracePeriodSeconds",
                    seconds,
                    "an integer of seconds, 0 or more",
                    "is not whole seconds",
                ),
            )
            if not isinstance(value, int)
            or isinstance(value, bool)
            or (key != "priority" and value < 0)
        ]
        errors.extend(bad)
        if not bad and isinstance(priority, int) and isinstance(seconds, int):
            entries.append(outer.PriorityGrace(priority, seconds))
    if len(entries) != len(raw):
        return None
    return tuple(sorted(entries, key=lambda e: e.priority))
