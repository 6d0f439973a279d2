"""A hostile annotation cannot make the real webhook deny a pod (failurePolicy Ignore, not strict).

A duration of 5,000 leading zeros made the duration parser raise ValueError; kopf
turned the exception into ``allowed: false`` and the API server refused the pod,
whatever the failurePolicy said. Now the pod is created, unchanged, with a
warning and an error status.
"""

from __future__ import annotations

import json

from webhook_rig import Cluster, has_sidecar

from quiesce import annotations as keys


def test_a_hostile_duration_creates_the_pod_unchanged_with_a_warning(
    cluster: Cluster, namespace: str
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "hostile",
            "annotations": {keys.INJECT: "true", keys.CONVERGE_MAX: "0" * 5000 + "1s"},
        },
        "spec": {"containers": [{"name": "app", "image": "registry.example/web:1"}]},
    }
    result = cluster.rig.kubectl(
        "create", "-n", namespace, "-f", "-", input=json.dumps(body), check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Warning: quiesce: the pod is created without its sidecar" in result.stderr
    created = cluster.api.get(f"/api/v1/namespaces/{namespace}/pods/hostile")
    assert not has_sidecar(created)
    assert created["metadata"]["annotations"][keys.STATE_STATUS].startswith("error: ")
