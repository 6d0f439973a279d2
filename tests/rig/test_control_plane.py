"""The control plane is real: the API server, controllers and scheduler work together."""

from __future__ import annotations

import json
import time

from quiesce.rig import binaries, rig

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: rig-cp}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: quiesce/testapp
        ports: [{containerPort: 8080}]
"""


def _wait_for(what: str, check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_api_server_reports_the_built_version(rig_instance: rig.Rig) -> None:
    version = json.loads(rig_instance.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == binaries.KUBERNETES_VERSION
    assert version["clientVersion"]["gitVersion"] == binaries.KUBERNETES_VERSION


def test_deployment_gets_a_replicaset_and_pods_bound_to_the_node(rig_instance: rig.Rig) -> None:
    rig_instance.kubectl("create", "namespace", "rig-cp")
    rig_instance.kubectl("apply", "-f", "-", input=DEPLOYMENT)

    def replicasets() -> list[dict]:  # type: ignore[type-arg]
        out = rig_instance.kubectl("get", "rs", "-n", "rig-cp", "-l", "app=web", "-o", "json")
        return json.loads(out.stdout)["items"]  # type: ignore[no-any-return]

    rs = _wait_for("a ReplicaSet from the deployment controller", replicasets)
    assert rs[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"

    def bound_pods() -> list[dict]:  # type: ignore[type-arg]
        out = rig_instance.kubectl("get", "pods", "-n", "rig-cp", "-l", "app=web", "-o", "json")
        pods = json.loads(out.stdout)["items"]
        bound = [p for p in pods if p["spec"].get("nodeName")]
        return bound if len(bound) == 2 else []

    pods = _wait_for("2 pods bound by the scheduler", bound_pods)
    assert {p["spec"]["nodeName"] for p in pods} == {"rig-node-1"}
    # The ServiceAccount admission plugin (real) projected a token volume.
    assert any(v["name"].startswith("kube-api-access") for v in pods[0]["spec"]["volumes"])


def test_node_is_ready_with_the_bridge_address(rig_instance: rig.Rig) -> None:
    node = json.loads(rig_instance.kubectl("get", "node", "rig-node-1", "-o", "json").stdout)
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == rig_instance.network.host_ip
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    lease = json.loads(
        rig_instance.kubectl(
            "get", "lease", "-n", "kube-node-lease", "rig-node-1", "-o", "json"
        ).stdout
    )
    assert lease["spec"]["holderIdentity"] == "rig-node-1"
