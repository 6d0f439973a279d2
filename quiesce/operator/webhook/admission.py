"""The webhook's pure part: one Pod CREATE in, the admission out; the configuration it needs.

Everything here is a function of the pod and the settings (no I/O), so the
decisions and the MutatingWebhookConfiguration are tested without a cluster.
The injection itself is the one template mode makes (:func:`quiesce.template.inject`).
"""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
from collections.abc import Mapping
from typing import Any, Final, Literal

from quiesce import annotations as keys
from quiesce import config as configuration
from quiesce import template
from quiesce.operator import reconcile, refusals, written
from quiesce.operator import settings as settings_

HANDLER_ID: Final = "inject"
WEBHOOK_NAME: Final = "pods.quiesce.dev"
CONFIG_PATH: Final = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
NAME_LABEL: Final = "kubernetes.io/metadata.name"

Result = Literal[
    "injected", "skipped", "already", "invalid", "denied", "disabled", "out-of-scope", "dry-run"
]


@dataclasses.dataclass(frozen=True)
class Admission:
    """What the webhook does with one pod: spec fields and annotations to set, warnings,
    a denial (strict mode only), and the result for metrics and logs."""

    result: Result
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    denial: str | None = None


def admit(
    pod: Mapping[str, Any],
    *,
    config: configuration.Config,
    cluster_native: bool,
    token: str,
    strict: bool = False,
    pod_security: str | None = None,
) -> Admission:
    """The admission of one Pod CREATE: inject as template mode would, or say why not.

    Idempotent: a pod that already carries the sidecar (its workload was injected in
    template mode, or this is a reinvocation) is left alone.

    Total: an exception other than the plan's errors (a bug) admits the pod unchanged
    with a warning and a status naming it, as invalid annotations do, or denies it in
    strict mode. Never an exception: kopf would turn it into ``allowed: false`` and
    deny the pod whatever the failurePolicy and the strict switch say.
    """
    try:
        return _admit(
            pod,
            config=config,
            cluster_native=cluster_native,
            token=token,
            strict=strict,
            pod_security=pod_security,
        )
    except Exception as exc:  # the boundary: nothing but an admission leaves admit
        return _refuse([refusals.internal_error(exc, "a pod")], strict=strict)


#: The API server cuts each admission warning at 256 characters and keeps 4 KiB of them
#: in all (k8s.io/apiserver's warning recorder): send no more than it keeps.
WARNING_MAX: Final = 256
WARNINGS_MAX: Final = 12


def _refuse(errors: tuple[str, ...] | list[str], *, strict: bool) -> Admission:
    listing = "; ".join(errors)
    if strict:
        denial = f"quiesce (strict mode) refused the pod: {listing}"
        return Admission("denied", denial=refusals.cut(denial, refusals.EVENT_MESSAGE_MAX))
    warnings = [
        refusals.cut(f"quiesce: the pod is created without its sidecar: {error}", WARNING_MAX)
        for error in errors[:WARNINGS_MAX]
    ]
    if len(errors) > WARNINGS_MAX:
        warnings.append(f"quiesce: and {len(errors) - WARNINGS_MAX} more errors")
    return Admission(
        "invalid",
        annotations={
            keys.STATE_STATUS: refusals.cut(reconcile.ERROR_PREFIX + listing, refusals.STATUS_MAX)
        },
        warnings=tuple(warnings),
    )


def _admit(
    pod: Mapping[str, Any],
    *,
    config: configuration.Config,
    cluster_native: bool,
    token: str,
    strict: bool,
    pod_security: str | None,
) -> Admission:
    metadata: Mapping[str, Any] = pod.get("metadata") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    if not reconcile.wants_injection(annotations):
        return Admission("skipped")
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return Admission("skipped")
    if template.is_injected(spec):
        return Admission("already")
    # What the user wrote is known only when the pod itself was applied; otherwise 30 s
    # counts as the user's, the safe side (a longer grace), as in template mode.
    defaulted = written.grace_defaulted(pod, spec, path=template.pod_spec_path("Pod"))
    planned = template.plan_and_inject(
        annotations,
        spec,
        config,
        cluster_native=cluster_native,
        token=token,
        written=written.without_grace(spec, defaulted),
        pod_security=pod_security,
    )
    plan, native, injection = planned.plan, planned.native, planned.injection
    if plan is None or injection is None:
        return _refuse(planned.errors, strict=strict)
    changed = {key: value for key, value in injection.pod_spec.items() if spec.get(key) != value}
    # The plan hash serialises the plan (dataclasses.asdict, ~0.3 ms): once per admission.
    plan_hash = plan.plan_hash()
    status = reconcile.ok_status(plan, native=native, plan_hash=plan_hash)
    return Admission(
        "injected",
        spec=changed,
        annotations={keys.STATE_STATUS: status, keys.STATE_PLAN_HASH: plan_hash},
    )


def in_scope(namespace: str, patterns: tuple[str, ...]) -> bool:
    """Does the operator's ``--namespace`` scope (kopf globs, ``!`` negations) cover it?"""
    if not patterns:
        return True
    positive = [p for p in patterns if not p.startswith("!")]
    if any(fnmatch.fnmatchcase(namespace, p[1:]) for p in patterns if p.startswith("!")):
        return False
    return not positive or any(fnmatch.fnmatchcase(namespace, p) for p in positive)


def namespace_selector(settings: settings_.OperatorSettings) -> dict[str, Any]:
    """Which namespaces the API server sends to the webhook at all."""
    excluded = sorted({*settings.webhook.exclude_namespaces, settings.operator_namespace})
    expressions: list[dict[str, Any]] = [
        {"key": NAME_LABEL, "operator": "NotIn", "values": excluded},
        {"key": keys.DISABLED_LABEL, "operator": "NotIn", "values": ["true"]},
    ]
    label = settings.webhook.namespace_label.strip()
    if label:
        key, sep, value = label.partition("=")
        if sep:
            expressions.append({"key": key, "operator": "In", "values": [value]})
        else:
            expressions.append({"key": key, "operator": "Exists"})
    exact = [p for p in settings.namespaces if not any(c in p for c in "*?[!")]
    if settings.namespaces and len(exact) == len(settings.namespaces):
        expressions.append({"key": NAME_LABEL, "operator": "In", "values": sorted(exact)})
    return {"matchExpressions": expressions}


def label_selector(settings: settings_.OperatorSettings) -> str:
    """The namespace label as a list selector ("" = every namespace)."""
    return settings.webhook.namespace_label.strip()


def client_config(settings: settings_.OperatorSettings, ca_bundle: bytes) -> dict[str, Any]:
    config: dict[str, Any]
    if settings.webhook.url:
        config = {"url": settings.webhook.url.rstrip("/") + "/" + HANDLER_ID}
    else:
        where, _, port = settings.webhook.service.partition(":")
        namespace, _, name = where.partition("/")
        config = {
            "service": {
                "namespace": namespace,
                "name": name,
                "path": "/" + HANDLER_ID,
                "port": int(port or 443),
            }
        }
    config["caBundle"] = base64.b64encode(ca_bundle).decode("ascii")
    return config


def configuration_body(settings: settings_.OperatorSettings, ca_bundle: bytes) -> dict[str, Any]:
    """The MutatingWebhookConfiguration, as quiesce applies it."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": settings.webhook.name,
            "labels": {"app.kubernetes.io/managed-by": "quiesce"},
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "clientConfig": client_config(settings, ca_bundle),
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": settings.webhook.failure_policy,
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": settings.webhook.timeout,
                "reinvocationPolicy": settings.webhook.reinvocation,
                "namespaceSelector": namespace_selector(settings),
                "objectSelector": {},
            }
        ],
    }


def missed(pod: Mapping[str, Any]) -> bool:
    """A pod that asked for quiesce, has no sidecar, and that the webhook never saw
    (it marks every pod it admits with ``state.quiesce.dev/status``)."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if not reconcile.wants_injection(annotations) or keys.STATE_STATUS in annotations:
        return False
    if metadata.get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return not template.is_injected(pod.get("spec") or {})


def webhook_hosts(settings: settings_.OperatorSettings) -> list[str]:
    """The names the serving certificate must carry: the URL's host, or the Service's."""
    if settings.webhook.url:
        from urllib.parse import urlsplit

        host = urlsplit(settings.webhook.url).hostname
        return [host] if host else []
    where = settings.webhook.service.partition(":")[0]
    namespace, _, name = where.partition("/")
    return [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local", name]
