"""kube-proxy on a real node: Service ClusterIPs work for its pods, and the host is untouched.

kube-proxy runs in the node's own network namespace (iptables mode, see
``quiesce/rig/realnode/kubeproxy.py``). A pod on the node reaches the API
server through the ``kubernetes`` Service's ClusterIP, which the kubelet put
in its ``KUBERNETES_SERVICE_HOST``, and another pod through that pod's
ClusterIP Service. While it runs and after the node stops, the host's
iptables rules and kernel settings are those from before the node started.

The tests run in file order and share one node; the last one stops it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from quiesce.rig import rig
from quiesce.rig.realnode import images, kubelet
from quiesce.rig.realnode.node import RealNode

from .test_real_node import before, rules, snapshot, wait_for

__all__ = ["before"]  # the fixture, shared with test_real_node (host snapshot before the node)

NAMESPACE = "realnode-kube-proxy"
NODE = "rig-real-kp"

# busybox's static wget crashes here (exit 139, even for plain HTTP): nc speaks HTTP instead.
HTTP_GET = r"printf 'GET /index.html HTTP/1.0\r\n\r\n'"

WEB = r"""
mkdir -p /tmp/www && echo served-by-web > /tmp/www/index.html
exec httpd -f -p 8080 -h /tmp/www
"""


def pod(node: RealNode, name: str, script: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": kubelet.placed(
            {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "main",
                        "image": images.BUSYBOX_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["/bin/sh", "-c", script],
                    }
                ],
            },
            node.name,
        ),
    }


def apply(r: rig.Rig, obj: dict[str, Any]) -> None:
    r.kubectl("apply", "-f", "-", input=json.dumps(obj))


def running(r: rig.Rig, name: str) -> dict[str, Any] | None:
    got = json.loads(r.kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "json").stdout)
    return got if got["status"].get("phase") == "Running" else None


def in_client(r: rig.Rig, script: str) -> subprocess.CompletedProcess[str]:
    return r.kubectl("exec", "-n", NAMESPACE, "client", "--", "sh", "-c", script, check=False)


@pytest.fixture(scope="module")
def node(rig_instance: rig.Rig, before: dict[str, Any]) -> Iterator[RealNode]:
    n = RealNode.start(rig_instance, name=NODE, index=2)
    try:
        rig_instance.kubectl("create", "namespace", NAMESPACE)
        apply(rig_instance, pod(n, "web", WEB, {"app": "kp-web"}))
        apply(rig_instance, pod(n, "client", "exec sleep 3600", {"app": "kp-client"}))
        apply(
            rig_instance,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": NAMESPACE},
                "spec": {
                    "selector": {"app": "kp-web"},
                    "ports": [{"port": 80, "targetPort": 8080}],
                },
            },
        )
        for name in ("web", "client"):
            wait_for(f"pod {name} running", lambda name=name: running(rig_instance, name))
        yield n
    finally:
        n.stop()
        rig_instance.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_a_pod_reaches_the_api_server_through_the_kubernetes_cluster_ip(
    node: RealNode, rig_instance: rig.Rig
) -> None:
    service = json.loads(rig_instance.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)
    cluster_ip = service["spec"]["clusterIP"]
    env = in_client(rig_instance, "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT")
    assert env.stdout.strip() == f"{cluster_ip}:443"
    # Plain HTTP to the TLS port: Go's TLS server (the API server's) answers
    # it with a 400 that says so, which only the API server's listener sends.
    got = in_client(
        rig_instance, f"{HTTP_GET} | nc -w 5 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT"
    )
    answer = got.stdout + got.stderr
    assert answer.startswith("HTTP/1.0 400 Bad Request"), answer
    assert "Client sent an HTTP request to an HTTPS server" in answer, answer


def test_a_pod_reaches_another_pods_cluster_ip_service(
    node: RealNode, rig_instance: rig.Rig
) -> None:
    service = json.loads(
        rig_instance.kubectl("get", "svc", "web", "-n", NAMESPACE, "-o", "json").stdout
    )
    cluster_ip = service["spec"]["clusterIP"]

    def fetched() -> str | None:
        got = in_client(rig_instance, f"{HTTP_GET} | nc -w 3 {cluster_ip} 80")
        return got.stdout if got.stdout.startswith("HTTP/1.") else None

    # The Service's EndpointSlice follows the pod's readiness: retry until then.
    answer = wait_for("the web Service through its ClusterIP", fetched)
    assert answer.startswith("HTTP/1.1 200 OK"), answer
    assert answer.rstrip().endswith("served-by-web"), answer


def test_the_rules_live_in_the_node_and_the_host_is_as_before(
    node: RealNode, before: dict[str, Any]
) -> None:
    in_node = node.run(["iptables-save", "-t", "nat"]).stdout
    assert f"{NAMESPACE}/web" in in_node and "default/kubernetes" in in_node
    assert rules() == before["rules"], "kube-proxy wrote rules on the host"
    node.stop()
    after = snapshot()
    assert after["rules"] == before["rules"]
    changed = {
        k: (v, after["sysctls"].get(k))
        for k, v in before["sysctls"].items()
        if k not in before["moving"] and after["sysctls"].get(k) != v
    }
    assert changed == {}
