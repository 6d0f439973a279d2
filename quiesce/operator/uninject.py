"""Restore every injected workload: what ``helm uninstall`` runs before deleting quiesce.

Removing the operator must not leave workloads with a sidecar whose RBAC and
configuration are gone. ``quiesce uninject`` stops the operator first (a
running one would re-inject: workloads still carry ``quiesce.dev/inject``),
then writes each workload's original template back exactly as the operator
does when the annotation is removed, and removes the webhook configuration.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from quiesce import annotations as keys
from quiesce.operator import apply, reconcile, resources

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Report:
    restored: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _collection(kind: resources.Kind, namespace: str | None) -> str:
    if namespace:
        return kind.path(namespace)
    root = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
    return f"{root}/{kind.plural}"


def stop_operator(client: apply.Client, namespace: str, name: str, *, timeout: float) -> None:
    """Scale the operator's StatefulSet to 0 and wait until its pods are gone."""
    client.request(
        "PATCH",
        f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/scale",
        body={"spec": {"replicas": 0}},
        content_type="application/merge-patch+json",
    )
    deadline = time.monotonic() + timeout
    while True:
        pods = client.request("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
        left = [p["metadata"]["name"] for p in pods if p["metadata"]["name"].startswith(f"{name}-")]
        if not left:
            logger.info("Operator %s/%s is stopped.", namespace, name)
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"operator pods still running after {timeout:.0f} s: {left}")
        time.sleep(1)


def restore_all(client: apply.Client, namespaces: list[str] | None) -> Report:
    """Restore every workload with quiesce's bookkeeping in ``namespaces`` (None: all)."""
    report = Report()
    for kind in resources.WORKLOADS:
        for namespace in namespaces or [None]:  # type: ignore[list-item]
            items = client.request("GET", _collection(kind, namespace)).get("items") or []
            for obj in items:
                obj.setdefault("apiVersion", kind.api_version)
                obj.setdefault("kind", kind.kind)
                meta = obj["metadata"]
                ref = f"{kind.kind}/{meta['namespace']}/{meta['name']}"
                if not any(k in (meta.get("annotations") or {}) for k in keys.STATE_KEYS):
                    continue
                decision = reconcile.restore(obj)
                if decision.write is None or decision.action not in ("restore", "forget"):
                    report.failed.append(f"{ref}: {decision.why}")
                    logger.error("Cannot restore %s: %s", ref, decision.why)
                    continue
                try:
                    client.write(kind, meta["namespace"], meta["name"], decision.write)
                except apply.ApiError as exc:
                    report.failed.append(f"{ref}: {exc}")
                    logger.error("Restoring %s failed: %s", ref, exc)
                    continue
                report.restored.append(ref)
                logger.info("Restored the original pod template of %s.", ref)
    return report


def delete_webhook(client: apply.Client, name: str) -> None:
    try:
        client.request(
            "DELETE", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
        )
    except apply.ApiError as exc:
        if exc.status != 404:
            raise
