"""The sidecar against the rig's real kube-apiserver and EndpointSlice controller.

It reads its own pod (``deletionGracePeriodSeconds`` shortens the deadline) and
watches the EndpointSlices of its namespace with aiohttp and a real
service-account token; without RBAC or without an API server the check is
skipped and reported.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from quiesce import contract
from quiesce.rig import kubeapi, rig, rollout
from quiesce.sidecar import server
from quiesce.sidecar.settings import KubeSettings

from .helpers import make_settings, wait_for

pytestmark = pytest.mark.rig

TOKEN = {"X-Quiesce-Token": "s3cret"}
POD_IP = "198.18.250.7"  # a pod IP only the API objects know; nothing is routed to it
ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


class Cluster:
    """A namespace with a Service, a Pod held by a finalizer, and service accounts."""

    def __init__(self, r: rig.Rig) -> None:
        assert r.control_plane is not None
        self.cp = r.control_plane
        self.api: kubeapi.ApiClient = r.control_plane.api()
        self.ns = f"sc-{secrets.token_hex(3)}"
        self.api.create("/api/v1/namespaces", {"metadata": {"name": self.ns}})
        # a Node no kubelet (and no node agent) serves: the pod is bound, nothing runs it,
        # and the EndpointSlice controller, which skips pods on unknown nodes, lists it
        self.node = f"quiesce-test-{secrets.token_hex(3)}"
        self.api.create("/api/v1/nodes", {"metadata": {"name": self.node}})

    def service_account_dir(
        self, tmp: Path, name: str, *, allowed: bool, events: bool = True
    ) -> Path:
        """A token of a new service account; ``allowed``: bound to the rules of the shipped
        ``quiesce-sidecar`` ClusterRole (as a Role), ``events create`` among them unless
        ``events`` is False."""
        api, ns = self.api, self.ns
        api.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": name}})
        if allowed:
            rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
            rules = yaml.safe_load(rollout.SIDECAR_CLUSTER_ROLE.read_text())["rules"]
            if not events:
                rules = [r for r in rules if "events" not in r["resources"]]
            api.create(f"{rbac}/roles", {"metadata": {"name": f"{name}-sidecar"}, "rules": rules})
            api.create(
                f"{rbac}/rolebindings",
                {
                    "metadata": {"name": f"{name}-sidecar"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": f"{name}-sidecar",
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
                },
            )
        token = api.create(
            f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
            {"spec": {"expirationSeconds": 3600}},
        )["status"]["token"]
        sa = tmp / f"sa-{name}"
        sa.mkdir()
        (sa / "token").write_text(token)
        (sa / "ca.crt").write_bytes(Path(self.cp.ca.cert_path).read_bytes())
        return sa

    def pod(self, name: str = "web-0") -> dict[str, Any]:
        pods = f"/api/v1/namespaces/{self.ns}/pods"
        pod = self.api.create(
            pods,
            {
                "metadata": {
                    "name": name,
                    "labels": {"app": "web"},
                    "finalizers": ["quiesce.dev/test-hold"],
                },
                "spec": {
                    # bound to a node: deletion is graceful (deletionGracePeriodSeconds)
                    "nodeName": self.node,
                    "containers": [{"name": "app", "image": "app:1"}],
                },
            },
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.api.merge_patch(
            f"{pods}/{name}/status",
            {
                "status": {
                    "phase": "Running",
                    "podIP": POD_IP,
                    "podIPs": [{"ip": POD_IP}],
                    "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    ],
                    "containerStatuses": [
                        {
                            "name": "app",
                            "image": "app:1",
                            "imageID": "",
                            "ready": True,
                            "restartCount": 0,
                            "containerID": "containerd://" + "ab" * 32,
                            "state": {"running": {"startedAt": now}},
                        }
                    ],
                }
            },
        )
        self.api.create(
            f"/api/v1/namespaces/{self.ns}/services",
            {
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        )
        return dict(pod)

    def ready_endpoints(self) -> list[bool]:
        path = f"/apis/discovery.k8s.io/v1/namespaces/{self.ns}/endpointslices"
        slices = self.api.get(path)["items"]
        return [
            (ep.get("conditions") or {}).get("ready") is not False
            for s in slices
            for ep in s.get("endpoints") or []
            if POD_IP in ep.get("addresses", [])
        ]

    def delete_pod(self, name: str, grace: int) -> None:
        query = urllib.parse.urlencode({"gracePeriodSeconds": grace})
        self.api.request("DELETE", f"/api/v1/namespaces/{self.ns}/pods/{name}?{query}")

    def cleanup(self) -> None:
        pods = self.api.get(f"/api/v1/namespaces/{self.ns}/pods")["items"]
        for pod in pods:
            self.api.merge_patch(
                f"/api/v1/namespaces/{self.ns}/pods/{pod['metadata']['name']}",
                {"metadata": {"finalizers": None}},
            )
        self.api.request("DELETE", f"/api/v1/namespaces/{self.ns}")
        self.api.request("DELETE", f"/api/v1/nodes/{self.node}")


@pytest.fixture
def cluster(rig_instance: rig.Rig) -> Iterator[Cluster]:
    c = Cluster(rig_instance)
    yield c
    c.cleanup()


def kube_settings(c: Cluster, sa: Path) -> KubeSettings:
    parsed = urllib.parse.urlparse(c.cp.server)
    assert parsed.hostname and parsed.port
    return KubeSettings(
        host=parsed.hostname, port=parsed.port, service_account_dir=str(sa), timeout=2.0
    )


PLAN = {"converge_max": 3.0, "quiet_window": 0.2, "deregister_timeout": 1.0, "margin": 2.0}


async def test_the_deletion_grace_period_shortens_the_deadline_and_endpointslices_are_watched(
    aiohttp_client: ClientFactory, cluster: Cluster, tmp_path: Path
) -> None:
    sa = cluster.service_account_dir(tmp_path, "web", allowed=True)
    pod = cluster.pod()
    wait_for(lambda: cluster.ready_endpoints() == [True], timeout=30)
    settings = make_settings(
        plan={**PLAN, "converge_max": 30.0},  # the plan's grace: 33 s
        kube=kube_settings(cluster, sa),
        pod_name="web-0",
        pod_namespace=cluster.ns,
        pod_uid=pod["metadata"]["uid"],
        pod_ip=POD_IP,
    )
    client = await aiohttp_client(server.create_app(settings))
    cluster.delete_pod("web-0", grace=8)  # as `kubectl delete --grace-period=8`
    resp = await client.get("/prestop", headers=TOKEN)
    assert resp.status == 200
    status = await (await client.get("/status")).json()
    grace = status["grace"]
    assert (grace["seconds"], grace["source"]) == (8, "deletionGracePeriodSeconds")
    assert status["deadline"] == pytest.approx(8 - grace["margin"], abs=0.01)
    converge = next(p for p in status["phases"] if p["name"] == "converge")
    assert converge["endpointslices"]["state"] == "not_ready", converge
    assert "endpointslices" in converge["satisfied_at"]
    assert cluster.ready_endpoints() == [False]
    # the sequence's Event, on the pod, through the shipped role's events create
    event = (await _event_outcome(client))["event"]
    assert event["result"] == "posted", event
    posted = cluster.api.get(f"/api/v1/namespaces/{cluster.ns}/events/{event['name']}")
    assert posted["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert posted["source"]["component"] == contract.EVENT_SOURCE
    assert posted["reason"] == event["reason"] and posted["reason"] in contract.EVENT_REASONS
    assert posted["metadata"]["labels"] == {"app": "web"}
    metrics = await (await client.get("/metrics")).text()
    assert 'quiesce_sidecar_events_total{result="posted"} 1.0' in metrics


async def _event_outcome(client: TestClient[web.Request, web.Application]) -> dict[str, Any]:
    """``/status`` once the sequence's one Event attempt has ended (it follows the hook)."""
    for _ in range(100):
        status: dict[str, Any] = await (await client.get("/status")).json()
        if "event" in status:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"no Event outcome in /status: {status}")


async def test_without_events_create_the_refusal_is_in_status_metrics_and_log_and_nothing_else(
    aiohttp_client: ClientFactory,
    cluster: Cluster,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quiesce.sidecar")
    sa = cluster.service_account_dir(tmp_path, "noevents", allowed=True, events=False)
    pod = cluster.pod()
    settings = make_settings(
        plan=PLAN,
        kube=kube_settings(cluster, sa),
        pod_name="web-0",
        pod_namespace=cluster.ns,
        pod_uid=pod["metadata"]["uid"],
        pod_ip=POD_IP,
    )
    client = await aiohttp_client(server.create_app(settings))
    cluster.delete_pod("web-0", grace=30)
    resp = await client.get("/prestop", headers=TOKEN)
    assert resp.status == 200 and (await resp.json())["errors"] == 0
    status = await _event_outcome(client)
    event = status["event"]
    assert (event["result"], event["forbidden"]) == ("failed", True), event
    assert "403" in event["error"]
    assert status["errors"] == [] and status["outcome"] == "ok"
    assert status["history"] == []
    metrics = await (await client.get("/metrics")).text()
    assert 'quiesce_sidecar_events_total{result="failed"} 1.0' in metrics
    assert 'quiesce_sidecar_events_total{result="posted"} 0.0' in metrics
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith(f"Could not post the {event['reason']} Event on pod web-0 (forbidden)")
        for m in lines
    ), lines
    assert any(m.endswith(f"Event {event['reason']} failed.") for m in lines), lines
    events = cluster.api.get(f"/api/v1/namespaces/{cluster.ns}/events")["items"]
    assert [
        e for e in events if e.get("source", {}).get("component") == contract.EVENT_SOURCE
    ] == []


async def test_without_rbac_the_endpointslice_check_is_skipped_and_the_plans_grace_used(
    aiohttp_client: ClientFactory, cluster: Cluster, tmp_path: Path
) -> None:
    sa = cluster.service_account_dir(tmp_path, "nobody", allowed=False)
    pod = cluster.pod()
    settings = make_settings(
        plan=PLAN,
        kube=kube_settings(cluster, sa),
        pod_name="web-0",
        pod_namespace=cluster.ns,
        pod_uid=pod["metadata"]["uid"],
        pod_ip=POD_IP,
    )
    client = await aiohttp_client(server.create_app(settings))
    assert (await client.get("/prestop", headers=TOKEN)).status == 200
    status = await (await client.get("/status")).json()
    assert status["grace"]["source"] == "plan"
    converge = next(p for p in status["phases"] if p["name"] == "converge")
    assert converge["endpointslices"]["state"] == "skipped"
    assert "forbidden" in converge["endpointslices"]["reason"]
    warnings = " ".join(w["warning"] for w in status["warnings"])
    assert "could not read the pod" in warnings and "403" in warnings
    assert "EndpointSlice check skipped" in warnings
