"""The one pod-template builder: a pod spec in, the injected pod spec out, plus what it replaced.

Template mode (the operator patching workloads), webhook mode (mutating Pods)
and ``quiesce plan`` all call :func:`inject`, so what a user previews is what
the cluster gets. :func:`restore` undoes it exactly (byte for byte, key order
included) from the JSON record of what was replaced, which the operator keeps
in ``state.quiesce.dev/replaced``. Pure: no I/O, inputs are never modified.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
from collections.abc import Mapping
from typing import Any, Final

from quiesce import config as configuration
from quiesce import contract
from quiesce import plan as plans

SIDECAR_NAME: Final = plans.SIDECAR_NAME
TOKEN_HEADER: Final = contract.TOKEN_HEADER
PORT_NAME: Final = "quiesce"
RECORD_VERSION: Final = 1
TOKEN_VOLUME: Final = "quiesce-consul-token"
CA_VOLUME: Final = "quiesce-consul-ca"
TOKEN_DIR: Final = "/var/run/secrets/quiesce/consul-token"
CA_DIR: Final = "/var/run/secrets/quiesce/consul-ca"
SIDECAR_COMMAND: Final = ("quiesce", "sidecar")
#: Seconds the sidecar's startup probe waits for its answer: a probe sent while the sidecar
#: imports aiohttp waits in the listen backlog (~0.3 s on an idle core, more on a loaded node).
STARTUP_PROBE_TIMEOUT: Final = 5
#: The namespace label Pod Security admission enforces (privileged, baseline, restricted).
POD_SECURITY_ENFORCE_LABEL: Final = "pod-security.kubernetes.io/enforce"


class InjectionError(ValueError):
    """The pod spec cannot be injected as is (already injected, name clash, bad token)."""


@dataclasses.dataclass(frozen=True)
class Injection:
    """The changed pod spec and the JSON-serialisable record :func:`restore` needs."""

    pod_spec: dict[str, Any]
    replaced: dict[str, Any]


def generate_token() -> str:
    """A fresh random per-workload ``/prestop`` token (URL-safe, 32 characters)."""
    return secrets.token_urlsafe(24)


def resolve_native(plan: plans.ShutdownPlan, *, cluster_supports_native: bool) -> bool:
    """Native sidecar (init container, ``restartPolicy: Always``) or a regular container?

    ``auto`` follows the cluster (native sidecars are on by default from Kubernetes 1.29).
    """
    if plan.sidecar_mode == "native":
        return True
    if plan.sidecar_mode == "container":
        return False
    return cluster_supports_native


def is_injected(pod_spec: Mapping[str, Any]) -> bool:
    """True when the spec already carries quiesce's sidecar."""
    for key in ("containers", "initContainers"):
        for container in pod_spec.get(key) or ():
            if isinstance(container, Mapping) and container.get("name") == SIDECAR_NAME:
                return True
    return False


#: Is this preStop hook quiesce's (the token header, compared case-insensitively)?
is_our_hook = contract.is_our_hook


def template_path(kind: str) -> tuple[str, ...]:
    """Where an object of ``kind`` keeps its pod template (``metadata`` and ``spec``).

    ``()`` for a Pod, which is its own template; workloads (Deployment, StatefulSet,
    DaemonSet, ReplicaSet, Job and kinds quiesce does not know) ``spec.template``.
    """
    if kind == "Pod":
        return ()
    if kind == "CronJob":
        return ("spec", "jobTemplate", "spec", "template")
    if kind == "PodTemplate":
        return ("template",)
    return ("spec", "template")


def pod_spec_path(kind: str) -> tuple[str, ...]:
    """Where an object of ``kind`` keeps its pod spec: ``spec`` for a Pod, else the template's."""
    return (*template_path(kind), "spec")


def pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec of an object (its ``kind`` says where), or None when it has none."""
    node: Any = obj
    for key in pod_spec_path(str(obj.get("kind") or "")):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else None


def json_pointer(*parts: object) -> str:
    """An RFC 6901 pointer to ``parts`` (``~`` and ``/`` escaped), e.g. for a JSON patch."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def prestop_hook(plan: plans.ShutdownPlan, token: str) -> dict[str, Any]:
    """The hook on every target container: the kubelet calls the sidecar, with the token."""
    return {
        "httpGet": {
            "path": contract.PRESTOP_PATH,
            "port": plan.port,
            "scheme": "HTTP",
            "httpHeaders": [{"name": TOKEN_HEADER, "value": token}],
        }
    }


def app_identity(
    pod_spec: Mapping[str, Any], containers: tuple[str, ...]
) -> tuple[int | None, int | None]:
    """The UID and GID the target containers run as, from their or the pod's securityContext.

    ``(None, None)`` when it is not written down (the image's USER decides, unknown
    here) or when the targets differ.
    """
    pod_context = pod_spec.get("securityContext")
    pod_ctx: Mapping[str, Any] = pod_context if isinstance(pod_context, Mapping) else {}
    found: set[tuple[Any, Any]] = set()
    for container in pod_spec.get("containers") or ():
        if not isinstance(container, Mapping) or container.get("name") not in containers:
            continue
        own = container.get("securityContext")
        ctx: Mapping[str, Any] = own if isinstance(own, Mapping) else {}
        uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
        gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup"))
        found.add((uid, gid))
    if len(found) != 1:
        return None, None
    ((uid, gid),) = found
    if not _is_id(uid):
        return None, None
    return uid, gid if _is_id(gid) else None


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def signal_security(
    pod_spec: Mapping[str, Any], plan: plans.ShutdownPlan, *, pod_security: str | None
) -> dict[str, Any]:
    """The sidecar's identity when it signals the app's process (``quiesce.dev/signal``).

    Preferred: the app's own UID. A process may signal another of the same UID
    without any capability, so the sidecar runs as the app does, non-root, no
    capability: Pod Security "restricted" admits it. (The sidecar makes itself
    non-dumpable at start, so the app cannot read its environment or files through
    /proc: quiesce.sidecar.hardening.)

    Otherwise (the UID is not written in the pod spec, or is 0): signalling
    another container's process needs CAP_KILL, and Kubernetes gives added
    capabilities to root only (kubernetes/kubernetes#56374): UID 0 with KILL
    alone. "baseline" admits that, "restricted" does not, so in a namespace that
    enforces "restricted" the injection is refused with the way out.
    """
    uid, gid = app_identity(pod_spec, plan.containers)
    if uid is not None and uid != 0:
        return {
            "runAsUser": uid,
            "runAsGroup": gid if gid is not None else uid,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
    if pod_security == "restricted":
        who = "runs as root" if uid == 0 else "has no runAsUser in its securityContext"
        raise InjectionError(
            f"quiesce.dev/signal: the namespace enforces Pod Security "
            f"{POD_SECURITY_ENFORCE_LABEL}=restricted, and the app container {who}: to signal "
            "it the sidecar would need root with CAP_KILL, which restricted forbids. Way out: "
            "set a non-root runAsUser on the app container (or the pod), and the sidecar runs "
            "as that UID with no capability; or drop quiesce.dev/signal and let the kubelet "
            "send the container's own stop signal (the image's STOPSIGNAL, or "
            "lifecycle.stopSignal where the ContainerStopSignals feature is on)"
        )
    return {
        "runAsUser": 0,
        "runAsNonRoot": False,
        "capabilities": {"drop": ["ALL"], "add": ["KILL"]},
    }


def sidecar_container(
    plan: plans.ShutdownPlan,
    config: configuration.Config,
    *,
    token: str,
    native: bool,
    security: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The sidecar container, as an init container (native) or a regular container.

    ``security``: its identity when it signals the app (:func:`signal_security`);
    otherwise it runs as the configured non-root UID.
    """
    env: list[dict[str, Any]] = [
        _literal(contract.PLAN_ENV, plan.to_json()),
        _literal(contract.TOKEN_ENV, token),
        _field(contract.POD_NAME_ENV, "metadata.name"),
        _field(contract.POD_NAMESPACE_ENV, "metadata.namespace"),
        _field(contract.POD_UID_ENV, "metadata.uid"),
        _field(contract.POD_IP_ENV, "status.podIP"),
        _field(contract.HOST_IP_ENV, "status.hostIP"),
        # Not escaped: $(HOST_IP) in the address is meant to expand (HOST_IP comes first).
        {"name": contract.CONSUL_HTTP_ADDR_ENV, "value": config.consul.address},
    ]
    mounts: list[dict[str, Any]] = []
    if config.consul.token_secret is not None:
        env.append(
            _literal(
                contract.CONSUL_HTTP_TOKEN_FILE_ENV, f"{TOKEN_DIR}/{config.consul.token_secret.key}"
            )
        )
        mounts.append({"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True})
    if config.consul.ca_secret is not None:
        env.append(_literal(contract.CONSUL_CACERT_ENV, f"{CA_DIR}/{config.consul.ca_secret.key}"))
        mounts.append({"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True})
    env.append(_literal(contract.LOG_FORMAT_ENV, config.sidecar.log_format))
    env.append(_literal(contract.SIDECAR_MODE_ENV, "native" if native else "container"))

    if plan.signal is not None:
        context = (
            dict(security) if security is not None else signal_security({}, plan, pod_security=None)
        )
    else:
        context = {
            "runAsUser": config.sidecar.run_as_user,
            "runAsGroup": config.sidecar.run_as_user,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
    context.update(
        readOnlyRootFilesystem=True,
        allowPrivilegeEscalation=False,
        seccompProfile={"type": "RuntimeDefault"},
    )
    container: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": config.sidecar.image,
        "imagePullPolicy": config.sidecar.image_pull_policy,
        "command": list(SIDECAR_COMMAND),
    }
    if native:
        container["restartPolicy"] = "Always"
    container.update(
        ports=[{"name": PORT_NAME, "containerPort": plan.port, "protocol": "TCP"}],
        env=env,
        resources={kind: dict(values) for kind, values in config.sidecar.resources.items()},
        securityContext=context,
        # Started once it serves (a native sidecar's app starts only then, so /prestop is
        # always there to call); the kubelet probes readiness as soon as startup succeeds,
        # so the pod is Ready right after the first startup probe passes. No initial delay:
        # the kubelet's first startup probe comes at its worker's next tick (up to one
        # period after the container starts), and the sidecar listens before its heavy
        # imports, so a probe that arrives during its start waits in the backlog and is
        # answered once it serves (the longer timeout covers a loaded node's start)
        # instead of failing and waiting another period (issue 20).
        startupProbe=_probe(
            "/readyz", plan.port, period=1, failures=30, timeout=STARTUP_PROBE_TIMEOUT
        ),
        readinessProbe=_probe("/readyz", plan.port, period=5, failures=1),
        livenessProbe=_probe("/healthz", plan.port, period=10, failures=3),
    )
    if mounts:
        container["volumeMounts"] = mounts
    return container


def inject(
    pod_spec: Mapping[str, Any],
    plan: plans.ShutdownPlan,
    config: configuration.Config,
    *,
    token: str,
    native: bool,
    pod_security: str | None = None,
) -> Injection:
    """Add the sidecar, the hooks, the grace and what they need; record what was there.

    ``pod_security``: the namespace's enforced Pod Security level (its
    ``pod-security.kubernetes.io/enforce`` label), when known.
    """
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise InjectionError("the /prestop token must be non-empty printable ASCII without spaces")
    if is_injected(pod_spec):
        raise InjectionError(
            f"the pod spec already has a {SIDECAR_NAME} container; restore it before injecting"
        )
    if not native and pod_spec.get("restartPolicy") in ("Never", "OnFailure"):
        # A regular sidecar container never exits, so a Job's pod would never complete.
        raise InjectionError(
            f"restartPolicy {pod_spec['restartPolicy']} (a Job's pod) needs a native sidecar: a "
            "regular sidecar container would keep the pod running after the app is done"
        )
    spec: dict[str, Any] = copy.deepcopy(dict(pod_spec))
    containers = spec.get("containers")
    if not isinstance(containers, list):
        raise InjectionError("the pod spec has no containers list")
    volumes = _volumes(config)
    existing = {v.get("name") for v in spec.get("volumes") or () if isinstance(v, Mapping)}
    for volume in volumes:
        if volume["name"] in existing:
            raise InjectionError(f"the pod spec already has a volume named {volume['name']}")

    record: dict[str, Any] = {
        "version": RECORD_VERSION,
        "sidecar": SIDECAR_NAME,
        "native": native,
        "lifecycles": {},
        "fields": {},
        "volumes": [v["name"] for v in volumes],
    }
    hook = prestop_hook(plan, token)
    by_name = {c.get("name"): c for c in containers if isinstance(c, dict)}
    for name in plan.containers:
        target = by_name.get(name)
        if target is None:
            raise InjectionError(f"the plan targets container {name}, which the pod spec lacks")
        lifecycle = target.get("lifecycle")
        record["lifecycles"][name] = _remember(target, "lifecycle")
        changed = dict(lifecycle) if isinstance(lifecycle, Mapping) else {}
        changed["preStop"] = copy.deepcopy(hook)
        target["lifecycle"] = changed

    _set(spec, "terminationGracePeriodSeconds", plan.grace_period_seconds, record)
    if plan.signal is not None:
        # The sidecar finds and signals the app's process through the shared PID namespace.
        _set(spec, "shareProcessNamespace", True, record)

    security = (
        signal_security(pod_spec, plan, pod_security=pod_security)
        if plan.signal is not None
        else None
    )
    sidecar = sidecar_container(plan, config, token=token, native=native, security=security)
    list_key = "initContainers" if native else "containers"
    record["fields"][list_key] = {"present": list_key in spec}
    spec.setdefault(list_key, []).append(sidecar)
    if volumes:
        record["fields"]["volumes"] = {"present": "volumes" in spec}
        spec.setdefault("volumes", []).extend(volumes)
    return Injection(pod_spec=spec, replaced=record)


@dataclasses.dataclass(frozen=True)
class Planned:
    """A pod spec's plan and injection, or every reason there is none."""

    plan: plans.ShutdownPlan | None = None
    native: bool = False
    injection: Injection | None = None
    plan_errors: tuple[plans.FieldError, ...] = ()
    injection_error: str | None = None

    @property
    def errors(self) -> tuple[str, ...]:
        """Every reason, as text (plan errors first)."""
        found = tuple(str(error) for error in self.plan_errors)
        return found if self.injection_error is None else (*found, self.injection_error)


def plan_and_inject(
    annotations: Mapping[str, str],
    pod_spec: Mapping[str, Any],
    config: configuration.Config,
    *,
    cluster_native: bool,
    token: str,
    written: Mapping[str, Any] | None = None,
    pod_security: str | None = None,
) -> Planned:
    """Plan, choose the sidecar kind, inject: what template mode, webhook mode and
    ``quiesce plan`` each do with one pod spec.

    The plan reads ``written`` (the spec as the user wrote it, say without a grace the
    API server defaulted; default ``pod_spec``); the injection changes ``pod_spec``.
    ``pod_security``: the namespace's enforced Pod Security level, when known.
    """
    try:
        plan = plans.build_plan(annotations, pod_spec if written is None else written, config.plan)
        native = resolve_native(plan, cluster_supports_native=cluster_native)
        injection = inject(
            pod_spec, plan, config, token=token, native=native, pod_security=pod_security
        )
    except plans.PlanError as exc:
        return Planned(plan_errors=exc.errors)
    except InjectionError as exc:
        return Planned(injection_error=str(exc))
    return Planned(plan=plan, native=native, injection=injection)


def restore(pod_spec: Mapping[str, Any], replaced: Mapping[str, Any]) -> dict[str, Any]:
    """Undo :func:`inject`: the original spec back, leaving alone what others changed since.

    A field is put back only while it still holds what quiesce set (a hook carrying the
    token header, the plan's grace); the sidecar and quiesce's volumes are removed by name.
    """
    if replaced.get("version") != RECORD_VERSION:
        raise InjectionError(f"unknown record version {replaced.get('version')!r}")
    spec: dict[str, Any] = copy.deepcopy(dict(pod_spec))
    fields: Mapping[str, Any] = replaced.get("fields", {})
    sidecar = replaced.get("sidecar", SIDECAR_NAME)

    for list_key in ("containers", "initContainers"):
        items = spec.get(list_key)
        if isinstance(items, list):
            kept = [c for c in items if not (isinstance(c, Mapping) and c.get("name") == sidecar)]
            if len(kept) != len(items):
                spec[list_key] = kept
                if not kept and not fields.get(list_key, {}).get("present", True):
                    del spec[list_key]

    ours = set(replaced.get("volumes", ()))
    if ours and isinstance(spec.get("volumes"), list):
        spec["volumes"] = [
            v for v in spec["volumes"] if not (isinstance(v, Mapping) and v.get("name") in ours)
        ]
        if not spec["volumes"] and not fields.get("volumes", {}).get("present", True):
            del spec["volumes"]

    for name, was in replaced.get("lifecycles", {}).items():
        for container in spec.get("containers") or ():
            if not (isinstance(container, dict) and container.get("name") == name):
                continue
            lifecycle = container.get("lifecycle")
            if not (isinstance(lifecycle, dict) and is_our_hook(lifecycle.get("preStop"))):
                continue  # changed by someone else since: theirs now
            if was["present"]:
                container["lifecycle"] = copy.deepcopy(was["value"])
            else:
                del lifecycle["preStop"]
                if not lifecycle:
                    del container["lifecycle"]

    for key in ("terminationGracePeriodSeconds", "shareProcessNamespace"):
        was = fields.get(key)
        if was is None or key not in spec or spec[key] != was.get("set"):
            continue  # not ours to touch, or changed by someone else since
        if was["present"]:
            spec[key] = copy.deepcopy(was["value"])
        else:
            del spec[key]
    return spec


def _set(spec: dict[str, Any], key: str, value: Any, record: dict[str, Any]) -> None:
    record["fields"][key] = {**_remember(spec, key), "set": value}
    spec[key] = value


def _remember(owner: Mapping[str, Any], key: str) -> dict[str, Any]:
    if key in owner:
        return {"present": True, "value": copy.deepcopy(owner[key])}
    return {"present": False}


def _literal(name: str, value: str) -> dict[str, str]:
    # Kubernetes expands $(VAR) in env values; "$$" is its escape for a literal "$".
    return {"name": name, "value": value.replace("$", "$$")}


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _probe(path: str, port: int, *, period: int, failures: int, timeout: int = 1) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _volumes(config: configuration.Config) -> list[dict[str, Any]]:
    volumes = []
    for name, ref in (
        (TOKEN_VOLUME, config.consul.token_secret),
        (CA_VOLUME, config.consul.ca_secret),
    ):
        if ref is not None:
            items = [{"key": ref.key, "path": ref.key}]
            volumes.append({"name": name, "secret": {"secretName": ref.name, "items": items}})
    return volumes
