"""The node agent: a watch on the pods bound to one Node, one worker per pod.

Like the kubelet's pod config source, it lists then watches
``/api/v1/pods?fieldSelector=spec.nodeName=<node>`` (the only pod list the
Node authorizer allows a node) and hands every change to the pod's worker.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import secrets
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quiesce.rig import network
from quiesce.rig.nodeagent import api, envvars, runtime, worker

log = logging.getLogger(__name__)

VETH_INDEX_BASE = 1000
"""Veth indices of the agent's sandboxes start here, clear of the test process's."""


class NodeAgent:
    def __init__(
        self,
        *,
        api_client: api.Api,
        node_name: str,
        node_ip: str,
        subnet: ipaddress.IPv4Network,
        first_pod_ip: int,
        api_host: str,
        api_port: int,
        workdir: Path,
        ca_path: Path,
        backoff_initial: float = 10.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.api = api_client
        self.node_name = node_name
        self.node_ip = node_ip
        self.workdir = workdir
        self.ca_path = ca_path
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.service_env = envvars.service_env(api_host, api_port)
        # A view of the rig's bridge: the agent's pods take addresses from
        # ``first_pod_ip`` up, so they never collide with the test process's.
        self.network = network.RigNetwork(subnet)
        hosts = [str(h) for h in subnet.hosts()]
        self.network._free = hosts[first_pod_ip - 1 :]
        self.network._next_index = VETH_INDEX_BASE
        self.workers: dict[str, worker.PodWorker] = {}
        self._mount_points = runtime.MountPoints()
        self._event_posts: set[asyncio.Task[None]] = set()
        self._allocating = threading.Lock()
        self._stopping = asyncio.Event()

    # --- the Node protocol for workers --------------------------------------
    @property
    def mount_points(self) -> runtime.MountPoints:
        return self._mount_points

    def new_sandbox(self, name: str) -> network.PodSandbox:
        # Another process on this bridge (the tests' own sandboxes) may have
        # taken an address in our range: never hand out one in use.
        # Called from worker threads: one allocation at a time.
        with self._allocating:
            used = _addresses_in_use(self.network.prefix)
            free = self.network._free
            self.network._free = [ip for ip in free if ip not in used] + [
                ip for ip in free if ip in used
            ]
            return self.network.sandbox(name)

    def release_sandbox(self, sandbox: network.PodSandbox) -> None:
        # Reuse an address only after every other free one: a late packet to
        # a deleted pod's IP must not reach a new pod.
        with self._allocating:
            if sandbox.ip not in self.network._free:
                self.network._free.append(sandbox.ip)

    async def event(
        self,
        pod: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        field_path: str | None = None,
    ) -> None:
        """Record a core/v1 Event as the kubelet's recorder does (source: kubelet)."""
        meta = pod["metadata"]
        now = datetime.datetime.now(datetime.UTC)
        involved: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{secrets.token_hex(8)}",
                "namespace": meta["namespace"],
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventTime": None,
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
        }
        log.info(
            "event %s %s on %s/%s: %s", type_, reason, meta["namespace"], meta["name"], message
        )

        async def post() -> None:
            try:
                await self.api.post(f"/api/v1/namespaces/{meta['namespace']}/events", body)
            except (TimeoutError, api.ApiError, OSError) as exc:
                log.info("event %s not recorded: %s", reason, str(exc)[:160])

        # Like the kubelet's recorder, never hold up the caller (a kill, a hook).
        task = asyncio.create_task(post())
        self._event_posts.add(task)
        task.add_done_callback(self._event_posts.discard)

    # --- the watch ----------------------------------------------------------
    @property
    def _pods_path(self) -> str:
        return f"/api/v1/pods?fieldSelector=spec.nodeName%3D{self.node_name}"

    def _handle(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        w = self.workers.get(uid)
        if kind == "DELETED":
            if w is not None and w.finished.is_set():
                del self.workers[uid]
            elif w is not None:
                w.removed(pod)
            return
        if w is None:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return  # finished before this agent started: nothing to run
            w = worker.PodWorker(self, pod)
            self.workers[uid] = w
            log.info("pod %s/%s (%s) bound to this node: starting", w.namespace, w.name, uid)
            w.start()
        w.update(pod)

    async def run(self) -> None:
        runtime.prepare_host()
        resource_version = ""
        while not self._stopping.is_set():
            try:
                if not resource_version:
                    listed = await self.api.get(self._pods_path)
                    resource_version = listed["metadata"]["resourceVersion"]
                    seen = set()
                    for pod in listed.get("items", []):
                        seen.add(pod["metadata"]["uid"])
                        self._handle("MODIFIED", pod)
                    for uid, w in list(self.workers.items()):
                        if uid not in seen and not w.finished.is_set():
                            w.removed(w.pod)
                async for ev in self.api.watch(self._pods_path, resource_version):
                    kind, obj = ev["type"], ev["object"]
                    if kind == "ERROR":
                        log.info("watch error %s: relisting", obj.get("message"))
                        resource_version = ""
                        break
                    resource_version = obj["metadata"]["resourceVersion"]
                    if kind == "BOOKMARK":
                        continue
                    self._handle(kind, obj)
                self._reap()
            except (TimeoutError, api.ApiError, OSError, ValueError) as exc:
                log.warning("pod watch failed (%s); retrying in 1 s", exc)
                if isinstance(exc, api.ApiError) and exc.status == 410:
                    resource_version = ""
                await asyncio.sleep(1)

    def _reap(self) -> None:
        for uid, w in list(self.workers.items()):
            if w.finished.is_set() and w.gone_from_api:
                del self.workers[uid]

    async def shutdown(self) -> None:
        """Leave nothing behind: kill every pod's processes, remove every sandbox."""
        self._stopping.set()
        results = await asyncio.gather(
            *(w.shutdown() for w in self.workers.values()), return_exceptions=True
        )
        for w, result in zip(self.workers.values(), results, strict=True):
            if isinstance(result, BaseException):
                log.warning("pod %s: shutdown failed: %s", w.key, result)
        for ns in list(self.network.namespaces.values()):
            await asyncio.to_thread(ns.remove)
        runtime.release_host()
        await self.api.close()


def _addresses_in_use(prefix: str) -> set[str]:
    """IPv4 addresses of every network namespace of this rig (``<prefix>-*``)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    used: set[str] = set()
    for line in listed.splitlines():
        ns = line.split()[0] if line.split() else ""
        if not ns.startswith(prefix + "-"):
            continue
        out = subprocess.run(
            ["ip", "-n", ns, "-o", "-4", "addr", "show"], capture_output=True, text=True
        ).stdout
        for row in out.splitlines():
            fields = row.split()
            if len(fields) > 3:
                used.add(fields[3].split("/")[0])
    return used
