"""Take this pod's service instances out of Consul, and tell when they are gone.

Backends:

* ``agent``: instances registered on the Consul agent we talk to (the pod's own
  agent or its node's): service maintenance first, so health-filtered queries
  (DNS, ``?passing``) drop the instance at once, then deregistration.
* ``catalog``: agentless / consul-k8s style instances on other nodes (e.g.
  ``<node>-virtual``): deregistered through the catalog API (the catalog has no
  maintenance mode; deregistration is immediate there).
* ``auto``: agent API for instances on the agent's own node, catalog API for
  the others. ``none``: Kubernetes-only services.

An instance is this pod's when its meta names the pod (``pod-name`` and
``k8s-namespace``, and ``pod-uid`` when present), when its service address
is the pod IP, or when its ID is one of the plan's explicit IDs. Every Consul
call is retried with backoff, bounded by the caller's deadline.

py-consul is imported only when a sequence starts (``import consul`` costs
~6 MB of the sidecar's 40 MB budget), in a worker thread: the import takes
~120 ms of an idle core and about a second of a loaded one, during which the
event loop keeps reading the pod, sampling sockets and answering /status.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from quiesce.sidecar.settings import ConsulSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
Via = Literal["agent", "catalog"]
MAINTENANCE_REASON = "quiesce: pod is terminating"
_CHECK_KEYS = ("CheckID", "Name", "Status", "Notes", "Output", "ServiceID")


@dataclass(frozen=True, slots=True)
class PodIdentity:
    name: str
    namespace: str
    uid: str
    ip: str


@dataclass(frozen=True, slots=True)
class Instance:
    """One Consul service instance of this pod."""

    node: str
    service_id: str
    service: str
    address: str
    port: int
    via: Via
    matched_by: str

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "id": self.service_id,
            "service": self.service,
            "address": self.address,
            "port": self.port,
            "via": self.via,
            "matched_by": self.matched_by,
        }


@dataclass
class Report:
    """What deregistration found and did."""

    backend: str
    address: str
    found: list[Instance] = field(default_factory=list)
    deregistered: list[Instance] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "consul": self.address,
            "found": [i.as_json() for i in self.found],
            "deregistered": [i.as_json() for i in self.deregistered],
            "failures": self.failures,
        }


class ConsulUnavailable(Exception):
    """Every attempt of one Consul call failed within its budget."""


def match(
    *,
    pod: PodIdentity,
    explicit: Iterable[str],
    service_id: str,
    service: str,
    address: str,
    meta: dict[str, str] | None,
) -> str | None:
    """Why an instance is this pod's (``meta``, ``address``, ``id``), or None."""
    wanted = set(explicit)
    if service_id in wanted:
        return "id"
    if wanted and service not in wanted:
        return None
    meta = meta or {}
    if (
        pod.name
        and meta.get("pod-name") == pod.name
        and meta.get("k8s-namespace", pod.namespace) == pod.namespace
        and meta.get("pod-uid", pod.uid) == pod.uid
    ):
        return "meta"
    if pod.ip and address == pod.ip:
        return "address"
    return None


class ConsulBackend:
    """Deregistration and the "gone from health results" check, over py-consul's aio client."""

    def __init__(
        self,
        settings: ConsulSettings,
        *,
        pod: PodIdentity,
        explicit: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.pod = pod
        self.explicit = explicit
        self._clock = clock
        self._client: Any = None
        self._node: str | None = None

    @property
    def name(self) -> str:
        return self.settings.backend

    def _consul(self) -> Any:
        if self._client is None:
            import consul.aio  # lazily: see module docstring

            verify: bool | str = self.settings.verify and self.settings.scheme == "https"
            if verify and self.settings.ca_file:
                verify = self.settings.ca_file
            cert: Any = None
            if self.settings.client_cert:
                cert = (
                    (self.settings.client_cert, self.settings.client_key)
                    if self.settings.client_key
                    else self.settings.client_cert
                )
            client = consul.aio.Consul(
                host=self.settings.host,
                port=self.settings.port,
                scheme=self.settings.scheme,
                verify=verify,
                cert=cert,
            )
            # py-consul prefers CONSUL_HTTP_TOKEN; Consul's tools prefer the token file.
            client.token = self.settings.token
            self._client = client
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _call(
        self, what: str, make: Callable[[], Awaitable[T]], *, until: float, attempts: int = 6
    ) -> T:
        """One Consul call with retries and backoff, never past ``until`` (monotonic)."""
        delay = 0.1
        last: BaseException | None = None
        for attempt in range(1, attempts + 1):
            left = until - self._clock()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(min(self.settings.request_timeout, left)):
                    return await make()
            except asyncio.CancelledError:
                raise
            except (
                Exception
            ) as exc:  # py-consul raises ConsulException, aiohttp ClientError, OSError
                last = exc
                log.warning(
                    "Consul call %s to %s failed (attempt %d): %s",
                    what,
                    self.settings.address,
                    attempt,
                    _describe(exc),
                    extra={"consul": self.settings.address, "call": what, "attempt": attempt},
                )
            left = until - self._clock()
            if left <= 0 or attempt == attempts:
                break
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)
        raise ConsulUnavailable(
            f"{what} at {self.settings.address}: "
            + (_describe(last) if last else "no time left in the deadline")
        )

    async def _agent_node(self, until: float) -> str:
        if self._node is None:
            from consul.callback import CB

            c = self._consul()
            # py-consul 1.8's agent.self() sends no ACL token: call it with our headers
            info = await self._call(
                "agent/self",
                lambda: c.http.get(CB.json(), "/v1/agent/self", headers=c.prepare_headers()),
                until=until,
            )
            self._node = str(info["Config"]["NodeName"])
        return self._node

    def _catalog_deregister(self, inst: Instance) -> Awaitable[bool]:
        """``PUT /v1/catalog/deregister`` with the token in the header only.

        py-consul 1.8's catalog.deregister() also puts the token in a ``WriteRequest``
        body field, which Consul 1.14 rejects (400 "unknown field").
        """
        from consul.callback import CB

        c = self._consul()
        body = json.dumps({"Node": inst.node, "ServiceID": inst.service_id})
        result: Awaitable[bool] = c.http.put(
            CB.boolean(), "/v1/catalog/deregister", headers=c.prepare_headers(), data=body
        )
        return result

    async def find(self, until: float, report: Report) -> list[Instance]:
        """Every instance of this pod, each tagged with the API that must remove it."""
        if "consul.aio" not in sys.modules:
            await asyncio.to_thread(importlib.import_module, "consul.aio")
        c = self._consul()
        found: dict[tuple[str, str], Instance] = {}
        node: str | None = None
        agent_ids: set[str] = set()
        if self.settings.backend in ("auto", "agent"):
            try:
                node = await self._agent_node(until)
                services = await self._call("agent/services", c.agent.services, until=until)
            except ConsulUnavailable as exc:
                report.failures.append({"call": "agent/services", "error": str(exc)})
                if self.settings.backend == "agent":
                    raise
                services = {}
            for sid, svc in (services or {}).items():
                why = match(
                    pod=self.pod,
                    explicit=self.explicit,
                    service_id=sid,
                    service=svc.get("Service", ""),
                    address=svc.get("Address", ""),
                    meta=svc.get("Meta"),
                )
                if why:
                    agent_ids.add(sid)
                    found[(node or "", sid)] = Instance(
                        node=node or "",
                        service_id=sid,
                        service=svc.get("Service", ""),
                        address=svc.get("Address", ""),
                        port=int(svc.get("Port", 0)),
                        via="agent",
                        matched_by=why,
                    )
        if self.settings.backend in ("auto", "catalog"):
            for inst in await self._find_in_catalog(until, report):
                if inst.node == node and inst.service_id in agent_ids:
                    continue  # the agent owns it: agent API, or anti-entropy restores it
                found.setdefault((inst.node, inst.service_id), inst)
        return list(found.values())

    async def _find_in_catalog(self, until: float, report: Report) -> list[Instance]:
        c = self._consul()
        _, names = await self._call("catalog/services", c.catalog.services, until=until)
        names = set(names or {})
        wanted = set(self.explicit)
        if wanted and wanted <= names:
            names &= wanted  # all explicit entries are service names: look only at those
        sem = asyncio.Semaphore(8)

        async def one(name: str) -> list[Instance]:
            async with sem:
                try:
                    _, entries = await self._call(
                        f"catalog/service/{name}",
                        lambda: c.catalog.service(name),
                        until=until,
                        attempts=3,
                    )
                except ConsulUnavailable as exc:
                    report.failures.append({"call": f"catalog/service/{name}", "error": str(exc)})
                    return []
            out = []
            for e in entries or []:
                address = e.get("ServiceAddress") or e.get("Address", "")
                why = match(
                    pod=self.pod,
                    explicit=self.explicit,
                    service_id=e.get("ServiceID", ""),
                    service=e.get("ServiceName", name),
                    address=address,
                    meta=e.get("ServiceMeta"),
                )
                if why:
                    out.append(
                        Instance(
                            node=e.get("Node", ""),
                            service_id=e.get("ServiceID", ""),
                            service=e.get("ServiceName", name),
                            address=address,
                            port=int(e.get("ServicePort", 0)),
                            via="catalog",
                            matched_by=why,
                        )
                    )
            return out

        results = await asyncio.gather(*(one(n) for n in sorted(names)))
        return [i for group in results for i in group]

    async def deregister(self, until: float) -> Report:
        """Find and remove every instance; failures are recorded, never raised."""
        report = Report(backend=self.settings.backend, address=self.settings.address)
        try:
            report.found = await self.find(until, report)
        except ConsulUnavailable as exc:
            report.failures.append({"call": "find", "error": str(exc)})
            return report
        for inst in report.found:
            if inst.via == "agent":
                try:
                    await self.maintenance(inst, True, until=until, reason=MAINTENANCE_REASON)
                except ConsulUnavailable as exc:
                    report.failures.append({"instance": inst.service_id, "error": str(exc)})
                    continue
            await self.remove(inst, until, report)
        return report

    async def remove(self, inst: Instance, until: float, report: Report) -> bool:
        """Deregister one instance through the API that owns it; a failure goes to ``report``."""
        c = self._consul()
        try:
            if inst.via == "agent":
                await self._call(
                    f"agent/service/deregister/{inst.service_id}",
                    lambda: c.agent.service.deregister(inst.service_id),
                    until=until,
                )
            else:
                await self._call(
                    f"catalog/deregister/{inst.node}/{inst.service_id}",
                    lambda: self._catalog_deregister(inst),
                    until=until,
                )
        except ConsulUnavailable as exc:
            report.failures.append({"instance": inst.service_id, "error": str(exc)})
            return False
        report.deregistered.append(inst)
        log.info(
            "Deregistered Consul instance %s of %s on node %s via the %s API.",
            inst.service_id,
            inst.service,
            inst.node,
            inst.via,
            extra={"service_id": inst.service_id, "node": inst.node, "via": inst.via},
        )
        return True

    async def maintenance(
        self, inst: Instance, on: bool, *, until: float, reason: str = ""
    ) -> None:
        """Service maintenance on (with ``reason``) or off, for an agent instance; may raise
        :class:`ConsulUnavailable`."""
        c = self._consul()
        await self._call(
            f"agent/service/maintenance/{inst.service_id}",
            lambda: c.agent.service.maintenance(inst.service_id, on, reason),
            until=until,
        )

    async def agent_checks(self, until: float) -> dict[str, Any]:
        """The agent's checks by ID (maintenance checks are ``_service_maintenance:<id>``)."""
        c = self._consul()
        checks: dict[str, Any] = await self._call("agent/checks", c.agent.checks, until=until)
        return checks or {}

    async def catalog_entry(self, inst: Instance, until: float) -> dict[str, Any] | None:
        """The catalog registration of ``inst``, service and its checks, to register it again."""
        c = self._consul()
        _, entries = await self._call(
            f"health/service/{inst.service}",
            lambda: c.health.service(inst.service),
            until=until,
            attempts=3,
        )
        for e in entries or []:
            node, svc = e.get("Node") or {}, e.get("Service") or {}
            if node.get("Node") == inst.node and svc.get("ID") == inst.service_id:
                keep = ("ID", "Service", "Tags", "Address", "Port", "Meta")
                return {
                    "Node": inst.node,
                    "Address": node.get("Address", ""),
                    "SkipNodeUpdate": True,
                    "Service": {k: svc[k] for k in keep if k in svc},
                    "Checks": [
                        {k: ch[k] for k in _CHECK_KEYS if k in ch}
                        for ch in e.get("Checks") or []
                        if ch.get("ServiceID") == inst.service_id
                    ],
                }
        return None

    async def catalog_register(self, entry: dict[str, Any], until: float) -> None:
        """``PUT /v1/catalog/register`` with the token in the header only (see above)."""
        from consul.callback import CB

        c = self._consul()
        body = json.dumps(entry)
        await self._call(
            f"catalog/register/{entry.get('Node')}",
            lambda: c.http.put(
                CB.boolean(), "/v1/catalog/register", headers=c.prepare_headers(), data=body
            ),
            until=until,
        )

    async def still_listed(self, instances: Iterable[Instance], until: float) -> list[Instance]:
        """Which instances health-filtered queries (DNS, ``?passing``) still return."""
        instances = list(instances)
        c = self._consul()
        listed: list[Instance] = []
        for name in sorted({i.service for i in instances}):
            _, entries = await self._call(
                f"health/service/{name}",
                lambda n=name: c.health.service(n, passing=True),  # type: ignore[misc]
                until=until,
                attempts=1,
            )
            present = {(e["Node"]["Node"], e["Service"]["ID"]) for e in entries or []}
            listed += [
                i for i in instances if i.service == name and (i.node, i.service_id) in present
            ]
        return listed


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
