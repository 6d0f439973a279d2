"""An injected pod on a real kubelet: the product image, built here from the Dockerfile.

The operator's own template (sidecar, ``preStop: httpGet`` on the app, the grace
from the plan) runs on a real node (kubelet, containerd, runc; see
``docs/real-node.md``) with the quiesce image imported into the node's
containerd. When the pod is deleted, the kubelet calls the sidecar's
``/prestop`` through the app's hook; the sidecar (non-root, as the template
runs it) takes the pod out of the rig's real Consul and converges; only then
does the app get its SIGTERM, and it exits on it, not by SIGKILL.

The sidecar reaches the API server as in a cluster: through the ``kubernetes``
Service's ClusterIP that the kubelet puts in its environment, routed by the
node's kube-proxy.
"""

from __future__ import annotations

import functools
import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quiesce import config as configuration
from quiesce import plan as plans
from quiesce import template
from quiesce.operator import rbac
from quiesce.rig import haproxy, loadgen, rig
from quiesce.rig.realnode import images, kubelet, product
from quiesce.rig.realnode.node import RealNode

from .test_real_node import APP, wait_for

NAMESPACE = "realnode-injected"
SERVICE = "web-injected"
LOADED_SERVICE = "web-loaded"
REPO = Path(__file__).resolve().parents[2]
TESTAPP_DIR = REPO / "quiesce" / "rig"  # testapp.py: the standard library only


@functools.cache
def sidecar_image() -> images.Image:
    """Built once per session (``./dev setup`` has built it already: then it is cached)."""
    return product.quiesce_image()


@pytest.fixture(scope="module")
def node(rig_instance: rig.Rig) -> Iterator[RealNode]:
    image = sidecar_image()
    n = RealNode.start(rig_instance, name="rig-real-inj", index=3)
    try:
        n.import_image(image)
        rig_instance.kubectl("create", "namespace", NAMESPACE)
        yield n
    finally:
        n.stop()
        rig_instance.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def injected_pod(node: RealNode, events: Path) -> tuple[dict[str, Any], plans.ShutdownPlan]:
    """The app as a user writes it, then what the operator's template makes of it."""
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "app",
                "image": images.BUSYBOX_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", APP],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}},
                "volumeMounts": [{"name": "events", "mountPath": "/events"}],
            }
        ],
        "volumes": [{"name": "events", "hostPath": {"path": str(events), "type": "Directory"}}],
    }
    annotations = {
        "quiesce.dev/inject": "true",
        "quiesce.dev/converge-min": "1s",
        "quiesce.dev/converge-max": "5s",
    }
    pod = with_sidecar(node, "web", spec, annotations)
    return pod, plans.build_plan(annotations, spec)


def with_sidecar(
    node: RealNode, name: str, spec: dict[str, Any], annotations: dict[str, str]
) -> dict[str, Any]:
    """A pod of ``spec`` as the operator's template injects it, bound to the real node."""
    r = node.rig
    assert r.consul is not None and r.control_plane is not None
    plan = plans.build_plan(annotations, spec)
    config = configuration.load_config(
        {
            "consul": {"address": f"http://{r.consul.http_addr}"},
            "sidecar": {"image": sidecar_image().name, "imagePullPolicy": "Never"},
        }
    )
    injected = template.inject(
        spec, plan, config, token=template.generate_token(), native=True
    ).pod_spec
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
        "spec": kubelet.placed(injected, node.name),
    }


def pod_ready(r: rig.Rig, name: str) -> dict[str, Any] | None:
    got = json.loads(r.kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "json").stdout)
    conds = {c["type"]: c["status"] for c in got["status"].get("conditions", [])}
    return got if conds.get("Ready") == "True" else None


def sidecar_status(ip: str, port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/status", timeout=1) as resp:
            status: dict[str, Any] = json.loads(resp.read())
            return status if status.get("state") != "idle" else None
    except OSError:
        return None


def hook_failures(r: rig.Rig) -> list[str]:
    """The kubelet's FailedPreStopHook Events in the test namespace."""
    events = json.loads(
        r.kubectl(
            "get", "events", "-n", NAMESPACE, "-o", "json",
            "--field-selector", "reason=FailedPreStopHook",
        ).stdout
    )["items"]  # fmt: skip
    return [str(e["message"]) for e in events]


def grant_sidecar_rbac(r: rig.Rig) -> None:
    """What the operator does in each namespace it injects into: the shipped ClusterRole,
    bound to the workload's service account."""
    r.kubectl("apply", "-f", str(REPO / "manifests/rbac/sidecar-clusterrole.yaml"))
    role = json.loads(r.kubectl("get", "clusterrole", rbac.CLUSTER_ROLE, "-o", "json").stdout)
    binding = rbac.role_binding(NAMESPACE, "default", role_uid=role["metadata"]["uid"])
    r.kubectl("apply", "-f", "-", input=json.dumps(binding))


def test_an_injected_pod_leaves_consul_before_its_app_is_signalled(
    node: RealNode, tmp_path: Path
) -> None:
    r = node.rig
    assert r.consul is not None
    events = tmp_path / "events"
    events.mkdir()
    grant_sidecar_rbac(r)
    pod, plan = injected_pod(node, events)
    r.kubectl("apply", "-f", "-", input=json.dumps(pod))

    running = wait_for("the injected pod to be Ready", lambda: pod_ready(r, "web"), timeout=180)
    ip = running["status"]["podIP"]
    sidecar = next(
        c
        for c in running["spec"].get("initContainers", []) + running["spec"]["containers"]
        if c["name"] == template.SIDECAR_NAME
    )
    assert sidecar["image"] == sidecar_image().name
    assert sidecar["securityContext"]["runAsNonRoot"] is True  # the template's default mode
    assert running["spec"]["terminationGracePeriodSeconds"] == plan.grace_period_seconds
    # The app's instance, as the app would register itself (address: the pod IP).
    r.consul.register(
        {
            "ID": f"{SERVICE}-web",
            "Name": SERVICE,
            "Address": ip,
            "Port": 8080,
            "Check": {"HTTP": f"http://{ip}:8080/index.html", "Interval": "1s"},
        }
    )
    wait_for(
        "the instance passing in Consul",
        lambda: (
            [e for e in r.consul.healthy_instances(SERVICE) if e["Service"]["Address"] == ip]
            if r.consul is not None
            else None
        ),
        timeout=30,
    )

    r.kubectl("delete", "pod", "web", "-n", NAMESPACE, "--wait=false")
    # Until the app logs its SIGTERM, watch Consul (the instance must be gone first) and
    # the sidecar's /status (what it made of the kill).
    in_consul_at_term: bool | None = None
    seen: dict[str, Any] = {}
    give_up = time.monotonic() + 120
    while in_consul_at_term is None:
        registered = bool(r.consul.request("GET", f"/v1/catalog/service/{SERVICE}"))
        seen = sidecar_status(ip, plan.port) or seen
        log = (events / "log").read_text().split() if (events / "log").exists() else []
        if "term" in log:
            in_consul_at_term = registered
        assert time.monotonic() < give_up, f"the app never got its SIGTERM: {log}"
        time.sleep(0.05)
    assert in_consul_at_term is False, "the app was signalled while Consul still listed it"
    # The sidecar read its pod through the API server: a deletion, not an unknown kill.
    assert seen.get("classification", {}).get("kind") == "deletion", seen
    deregistered = [i["id"] for p in seen.get("phases", []) for i in p.get("deregistered", [])]
    assert f"{SERVICE}-web" in deregistered, seen
    r.kubectl("wait", "--for=delete", "pod/web", "-n", NAMESPACE, "--timeout=120s", timeout=130)
    # The app exited on its signal (a SIGKILL at the end of the grace leaves no "exit").
    assert (events / "log").read_text().split() == ["started", "term", "exit"]
    assert hook_failures(r) == []


def loaded_app_pod(node: RealNode, name: str, converge_max: str) -> dict[str, Any]:
    """The rig's test app (stdlib only) in the product image's Python, injected: it
    registers itself in Consul once it listens and deregisters itself on SIGTERM."""
    r = node.rig
    assert r.consul is not None
    image = sidecar_image().name
    testapp_args = [
        "--name", "$(POD_NAME)", "--consul", r.consul.http_addr, "--service", LOADED_SERVICE,
        "--address", "$(POD_IP)",
    ]  # fmt: skip
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "app",
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["python3", "/testapp/testapp.py", *testapp_args],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                ],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                "volumeMounts": [{"name": "testapp", "mountPath": "/testapp", "readOnly": True}],
            }
        ],
        "volumes": [
            {"name": "testapp", "hostPath": {"path": str(TESTAPP_DIR), "type": "Directory"}}
        ],
    }
    annotations = {"quiesce.dev/inject": "true", "quiesce.dev/converge-max": converge_max}
    return with_sidecar(node, name, spec, annotations)


def test_deleting_an_injected_pod_under_load_through_haproxy_drops_no_request(
    node: RealNode,
) -> None:
    r = node.rig
    assert r.consul is not None
    profile = haproxy.Profile(discovery_interval=2.0)
    converge_max = f"{math.ceil(profile.worst_case_lag)}s"
    names = ["loaded-a", "loaded-b"]
    for name in names:
        r.kubectl("apply", "-f", "-", input=json.dumps(loaded_app_pod(node, name, converge_max)))
    for name in names:
        wait_for(f"{name} Ready", lambda n=name: pod_ready(r, n), timeout=180)
    lb = r.load_balancer(LOADED_SERVICE, profile, port=8090)
    try:
        wait_for("HAProxy serving both pods", lambda: len(lb.active_servers()) == 2, timeout=60)
        out = r.workdir / "load-realnode.jsonl"
        gen = loadgen.start(r.network.client.popen, lb.url, rate=30, duration=120, out=out)
        time.sleep(5)
        r.kubectl("delete", "pod", names[0], "-n", NAMESPACE, "--wait=false")
        r.kubectl(
            "wait", "--for=delete", f"pod/{names[0]}", "-n", NAMESPACE, "--timeout=120s",
            timeout=130,
        )  # fmt: skip
        time.sleep(3)
        results = gen.stop()
    finally:
        lb.stop()
        r.load_balancers.remove(lb)
    summary = loadgen.summarise(results)
    print(f"\nreal node, one of two pods deleted under load: {summary}")
    assert summary.sent > 100, summary
    assert summary.failed == 0, summary
    assert hook_failures(r) == []
    entries = r.consul.request("GET", f"/v1/catalog/service/{LOADED_SERVICE}")
    assert [e["ServiceID"] for e in entries] == [f"{LOADED_SERVICE}-{names[1]}"]
    r.kubectl("delete", "pod", names[1], "-n", NAMESPACE, "--wait=false")
