"""A minimal API-server client: aiohttp and the pod's service-account token.

The sidecar never imports the kubernetes client (40 MB budget, and a lean
import-linter contract). It needs a few reads: its own pod (whether it is being
deleted or will never run again, the deletion grace period, the app containers'
IDs and readiness; ``get`` only, polled, never watched) and the EndpointSlices
of its namespace.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from quiesce.plan import model
from quiesce.sidecar.settings import KubeSettings

log = logging.getLogger(__name__)

SIDECAR_CONTAINER = model.SIDECAR_NAME
"""The sidecar's own container: never one of the app's."""


class KubeError(Exception):
    """The API server was unreachable or refused; ``status`` is the HTTP status if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def forbidden(self) -> bool:
        return self.status in (401, 403)


class KubeClient:
    def __init__(self, settings: KubeSettings) -> None:
        base = settings.base_url
        if base is None:
            raise KubeError("KUBERNETES_SERVICE_HOST is not set")
        self.settings = settings
        self.base = base
        ssl_ctx: ssl.SSLContext | bool = False
        if settings.scheme == "https":
            ca = os.path.join(settings.service_account_dir, "ca.crt")
            ssl_ctx = ssl.create_default_context(cafile=ca if os.path.exists(ca) else None)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx))

    def _headers(self) -> dict[str, str]:
        # Read on every request: projected service-account tokens rotate.
        path = os.path.join(self.settings.service_account_dir, "token")
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError:
            return {"Accept": "application/json"}
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def get(self, path: str, *, timeout: float, **params: str) -> dict[str, Any]:
        try:
            async with self._session.get(
                self.base + path,
                params=params or None,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=max(timeout, 0.01)),
            ) as resp:
                if resp.status != 200:
                    text = (await resp.text())[:200]
                    raise KubeError(f"GET {path}: {resp.status} {text}", status=resp.status)
                data: dict[str, Any] = await resp.json(content_type=None)
                return data
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise KubeError(f"GET {path} at {self.base}: {type(exc).__name__}: {exc}") from exc

    async def post(self, path: str, body: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """One POST, no retry (the caller decides whether there is time for another)."""
        headers = {**self._headers(), "Content-Type": "application/json"}
        try:
            async with self._session.post(
                self.base + path,
                data=json.dumps(body),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=max(timeout, 0.01)),
            ) as resp:
                if resp.status not in (200, 201):
                    text = (await resp.text())[:200]
                    raise KubeError(f"POST {path}: {resp.status} {text}", status=resp.status)
                data: dict[str, Any] = await resp.json(content_type=None)
                return data
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise KubeError(f"POST {path} at {self.base}: {type(exc).__name__}: {exc}") from exc

    async def watch(
        self, path: str, *, resource_version: str, timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}``) until the server or ``timeout`` ends it."""
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, int(timeout))),
        }
        try:
            async with self._session.get(
                self.base + path,
                params=params,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(
                    total=timeout + 1, sock_connect=self.settings.timeout
                ),
            ) as resp:
                if resp.status != 200:
                    text = (await resp.text())[:200]
                    raise KubeError(f"WATCH {path}: {resp.status} {text}", status=resp.status)
                async for line in resp.content:
                    if line.strip():
                        yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise KubeError(f"WATCH {path} at {self.base}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._session.close()


@dataclass(frozen=True)
class ContainerFacts:
    """One regular container's status, as the kubelet last reported it."""

    container_id: str = ""
    running: bool = False
    ready: bool = False


@dataclass(frozen=True)
class PodFacts:
    """What the sidecar reads from its own pod object."""

    deletion_grace_period: int | None = None
    container_ids: dict[str, str] = field(default_factory=dict)
    """Regular containers' IDs by name (``containerd://`` prefix stripped)."""
    deleting: bool = False
    """``metadata.deletionTimestamp`` is set: the pod is being deleted."""
    phase: str = ""
    disruption: str | None = None
    """The reason of a true ``DisruptionTarget`` condition (the pod will not run again)."""
    containers: dict[str, ContainerFacts] = field(default_factory=dict)
    sidecar_restarts: int = 0
    """How often the kubelet restarted the sidecar (native or regular): a crash to recover from."""
    labels: dict[str, str] = field(default_factory=dict)
    """The pod's labels: the Event carries them, so a workload's selector finds it."""
    owner: dict[str, str] | None = None
    """The controller in ``ownerReferences`` (apiVersion, kind, name, uid), if any."""


def pod_facts(pod: dict[str, Any]) -> PodFacts:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ids = {}
    containers = {}
    for cs in status.get("containerStatuses") or []:
        cid = (cs.get("containerID") or "").split("://", 1)[-1]
        if cid:
            ids[cs["name"]] = cid
        containers[cs["name"]] = ContainerFacts(
            container_id=cid,
            running="running" in (cs.get("state") or {}),
            ready=cs.get("ready") is True,
        )
    sidecar_restarts = 0
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if cs.get("name") == SIDECAR_CONTAINER:
            sidecar_restarts = int(cs.get("restartCount") or 0)
    disruption = None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True":
            disruption = str(cond.get("reason") or "DisruptionTarget")
    grace = meta.get("deletionGracePeriodSeconds")
    owner = None
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            owner = {k: str(ref.get(k) or "") for k in ("apiVersion", "kind", "name", "uid")}
    return PodFacts(
        deletion_grace_period=int(grace) if grace is not None else None,
        container_ids=ids,
        deleting=bool(meta.get("deletionTimestamp")),
        phase=str(status.get("phase") or ""),
        disruption=disruption,
        containers=containers,
        sidecar_restarts=sidecar_restarts,
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        owner=owner,
    )


async def read_pod(client: KubeClient, *, namespace: str, name: str, timeout: float) -> PodFacts:
    pod = await client.get(f"/api/v1/namespaces/{namespace}/pods/{name}", timeout=timeout)
    return pod_facts(pod)
