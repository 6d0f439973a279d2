"""Read workloads from a live cluster, read-only, for ``quiesce lint --context``.

Only GET/list requests through the kubernetes client: lint never writes. Objects
created by a controller that is itself listed (a Deployment's ReplicaSets and
their Pods, a CronJob's Jobs) are skipped, so each hazard is reported once, on
the object a user edits. A resource the credentials may not list, or an API
the cluster does not serve (TargetGroupBinding without the AWS controller),
is reported or skipped without stopping the run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from quiesce.lint import findings, loader

RESOURCES: Final = (
    # (client API class, resource in the method names, kind, optional: absent APIs are fine)
    ("AppsV1Api", "deployment", "Deployment", False),
    ("AppsV1Api", "stateful_set", "StatefulSet", False),
    ("AppsV1Api", "daemon_set", "DaemonSet", False),
    ("AppsV1Api", "replica_set", "ReplicaSet", False),
    ("CoreV1Api", "replication_controller", "ReplicationController", False),
    ("BatchV1Api", "cron_job", "CronJob", False),
    ("BatchV1Api", "job", "Job", False),
    ("CoreV1Api", "pod", "Pod", False),
    ("CoreV1Api", "service", "Service", False),
    ("CoreV1Api", "config_map", "ConfigMap", False),
    ("NetworkingV1Api", "ingress", "Ingress", False),
    ("CustomObjectsApi", "elbv2.k8s.aws/v1beta1/targetgroupbindings", "TargetGroupBinding", True),
)
CONTROLLERS: Final = frozenset(kind for _, _, kind, _ in RESOURCES) - {
    "Pod",
    "Service",
    "ConfigMap",
    "Ingress",
    "TargetGroupBinding",
}
PAGE: Final = 500
TIMEOUT_SECONDS: Final = 30


@dataclasses.dataclass(frozen=True)
class Source:
    """Which cluster to read: a kubeconfig file and context (None: the defaults)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    """One namespace, or None for all."""


def load(source: Source) -> loader.Loaded:
    """List every linted kind; failures become input errors, never exceptions."""
    from kubernetes import client, config  # imported here: only cluster mode pays for it

    loaded = loader.Loaded()
    label = _label(source)
    try:
        api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=source.kubeconfig, context=source.context
        )
    except Exception as e:  # kubeconfig missing, unreadable or without that context
        loaded.errors.append(_error(label, f"cannot load kubeconfig: {e}"))
        return loaded
    with api:
        for api_class, resource, kind, optional in RESOURCES:
            try:
                typed = getattr(client, api_class)(api)
                items = list(_list(typed, resource, source.namespace))
            except Exception as e:  # ApiException, connection errors
                status = getattr(e, "status", None)
                if optional and status == 404:
                    continue
                reason = getattr(e, "reason", None) or str(e).splitlines()[0]
                if status is None:  # no HTTP answer at all: the other lists would fail too
                    loaded.errors.append(_error(label, f"cannot reach the API server: {reason}"))
                    break
                loaded.errors.append(_error(label, f"cannot list {kind} objects: {reason}"))
                continue
            for obj in objects_from_list(kind, items):
                loaded.manifests.append(loader.Manifest(obj, findings.Location(label)))
    return loaded


def objects_from_list(kind: str, items: list[Any]) -> Iterator[Mapping[str, Any]]:
    """Items of a list response with their kind set (lists omit it), minus owned ones."""
    for item in items:
        if not isinstance(item, dict):
            continue
        if _owned_by_listed_controller(item):
            continue
        yield {**item, "kind": kind}


def _owned_by_listed_controller(obj: Mapping[str, Any]) -> bool:
    owners = obj.get("metadata", {}).get("ownerReferences") or []
    return any(
        isinstance(o, dict) and o.get("controller") and o.get("kind") in CONTROLLERS for o in owners
    )


def _list(typed: Any, resource: str, namespace: str | None) -> Iterator[Any]:
    """Every item of one resource, page by page, as plain JSON (camelCase) dicts.

    ``_preload_content=False`` returns the raw response in both generations of
    the kubernetes client (<= 31 and the newer generator), so no model
    classes are built and the objects look exactly like YAML manifests.
    """
    token: str | None = None
    while True:
        options: dict[str, Any] = {
            "limit": PAGE,
            "_preload_content": False,
            "_request_timeout": TIMEOUT_SECONDS,
        }
        if token:
            options["_continue"] = token
        if "/" in resource:  # a custom resource: group/version/plural
            group, version, plural = resource.split("/")
            if namespace:
                raw = typed.list_namespaced_custom_object(
                    group, version, namespace, plural, **options
                )
            else:
                raw = typed.list_cluster_custom_object(group, version, plural, **options)
        elif namespace:
            raw = getattr(typed, f"list_namespaced_{resource}")(namespace, **options)
        else:
            raw = getattr(typed, f"list_{resource}_for_all_namespaces")(**options)
        body = json.loads(raw.data)
        if not isinstance(body, dict):
            return
        yield from body.get("items") or []
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return


def _label(source: Source) -> str:
    return f"cluster:{source.context}" if source.context else "cluster"


def _error(label: str, message: str) -> findings.InputError:
    return findings.InputError(findings.Location(label), message)
