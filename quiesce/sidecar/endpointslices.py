"""Convergence check: the pod's EndpointSlice endpoints are no longer ``ready``.

Kubernetes takes a terminating pod out of its Services asynchronously; once
the EndpointSlice controller has marked our endpoints not ready, kube-proxy,
ingress controllers and mesh control planes that read EndpointSlices will
stop sending. Watched with aiohttp (list, then watch from its resourceVersion).
When the API server is unreachable or RBAC forbids it, the check is skipped
and the reason reported: it must never hold the pod past its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from quiesce.sidecar.kubeapi import KubeClient, KubeError

log = logging.getLogger(__name__)

State = Literal["pending", "ready", "not_ready", "skipped"]


def our_endpoints(
    slice_: dict[str, Any], *, pod_uid: str, pod_name: str, pod_ip: str
) -> list[dict[str, Any]]:
    out = []
    for ep in slice_.get("endpoints") or []:
        ref = ep.get("targetRef") or {}
        by_ref = (pod_uid and ref.get("uid") == pod_uid) or (
            pod_name and ref.get("kind") == "Pod" and ref.get("name") == pod_name
        )
        if by_ref or (pod_ip and pod_ip in (ep.get("addresses") or [])):
            out.append(ep)
    return out


def endpoint_ready(ep: dict[str, Any]) -> bool:
    # discovery.k8s.io/v1: "ready: nil should be interpreted as true"
    return (ep.get("conditions") or {}).get("ready") is not False


@dataclass
class EndpointSliceCheck:
    """Holds once no EndpointSlice lists this pod as a ready endpoint."""

    client: KubeClient | None
    namespace: str
    pod_uid: str
    pod_name: str
    pod_ip: str
    give_up_after: float = 5.0
    """Seconds of failed lists before the check is skipped (API server unreachable)."""
    state: State = "pending"
    reason: str = ""
    slices: dict[str, bool] = field(default_factory=dict)
    """Slice name -> lists us as ready."""

    @property
    def path(self) -> str:
        return f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices"

    def _skip(self, reason: str) -> None:
        self.state = "skipped"
        self.reason = reason
        log.warning("EndpointSlice check skipped: %s", reason, extra={"reason": reason})

    def _evaluate(self) -> None:
        ready = any(self.slices.values())
        new: State = "ready" if ready else "not_ready"
        if new != self.state:
            self.state = new
            if new == "not_ready":
                self.reason = "endpoints not ready" if self.slices else "pod is in no EndpointSlice"

    def _update(self, obj: dict[str, Any], deleted: bool = False) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if deleted:
            self.slices.pop(name, None)
            return
        eps = our_endpoints(obj, pod_uid=self.pod_uid, pod_name=self.pod_name, pod_ip=self.pod_ip)
        if eps:
            self.slices[name] = any(endpoint_ready(e) for e in eps)
        else:
            self.slices.pop(name, None)

    async def run(self, until: float) -> None:
        """List and watch until ``until`` (monotonic) or until skipped."""
        if self.client is None:
            self._skip("no API server configured (KUBERNETES_SERVICE_HOST unset)")
            return
        if not self.namespace:
            self._skip("POD_NAMESPACE is not set")
            return
        started = time.monotonic()
        delay = 0.2
        while time.monotonic() < until:
            left = until - time.monotonic()
            try:
                listing = await self.client.get(
                    self.path, timeout=min(self.client.settings.timeout, left)
                )
            except KubeError as exc:
                if exc.forbidden:
                    self._skip(f"forbidden: {exc} (bind the quiesce-sidecar ClusterRole)")
                    return
                if time.monotonic() - started >= self.give_up_after:
                    self._skip(f"API server unreachable: {exc}")
                    return
                await asyncio.sleep(min(delay, max(0.0, until - time.monotonic())))
                delay = min(delay * 2, 1.0)
                continue
            self.slices = {}
            for item in listing.get("items") or []:
                self._update(item)
            self._evaluate()
            version = (listing.get("metadata") or {}).get("resourceVersion", "")
            try:
                async for event in self.client.watch(
                    self.path,
                    resource_version=version,
                    timeout=max(1.0, until - time.monotonic()),
                ):
                    kind = event.get("type")
                    if kind == "ERROR":
                        break  # e.g. 410 Gone: list again
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._update(event.get("object") or {}, deleted=kind == "DELETED")
                        self._evaluate()
            except KubeError as exc:
                log.info("EndpointSlice watch ended: %s; listing again.", exc)
                await asyncio.sleep(min(0.2, max(0.0, until - time.monotonic())))
