"""Webhook mode in a namespace that enforces Pod Security "restricted", on the rig.

Mutating admission runs before PodSecurity's validation, so what the webhook
adds is judged too: a signal-mode pod whose app names its UID gets a sidecar of
that UID and is created; one whose UID is unknown is created unchanged with a
warning naming the enforce label (a root sidecar would have had the whole pod
rejected).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest
from webhook_rig import WEBHOOK_LABEL, Cluster, WebhookOperator, has_sidecar, wait_for

from quiesce import annotations as keys
from quiesce import template

_numbers = itertools.count(1)


@pytest.fixture
def restricted(cluster: Cluster, webhook_operator: WebhookOperator) -> Iterator[str]:
    name = f"wh-psa-{next(_numbers)}"
    cluster.create_namespace(
        name, {WEBHOOK_LABEL: "enabled", template.POD_SECURITY_ENFORCE_LABEL: "restricted"}
    )
    yield name
    cluster.delete_namespace(name)


def manifest(name: str, uid: int | None) -> str:
    context = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if uid is not None:
        context["runAsUser"] = uid
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": {keys.INJECT: "true", keys.SIGNAL: "SIGQUIT"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/web:1",
                                 "securityContext": context}]},
    })  # fmt: skip


def test_a_signal_mode_pod_with_its_uid_gets_a_sidecar_of_that_uid_and_is_admitted(
    cluster: Cluster, restricted: str
) -> None:
    cluster.rig.kubectl("create", "-n", restricted, "-f", "-", input=manifest("web", 1000))
    created = cluster.api.get(f"/api/v1/namespaces/{restricted}/pods/web")
    assert has_sidecar(created)
    sidecar = next(
        c for c in (created["spec"].get("initContainers") or []) + created["spec"]["containers"]
        if c["name"] == template.SIDECAR_NAME
    )  # fmt: skip
    assert sidecar["securityContext"]["runAsUser"] == 1000
    assert created["spec"]["shareProcessNamespace"] is True


def test_a_signal_mode_pod_of_unknown_uid_is_created_unchanged_with_a_warning(
    cluster: Cluster, restricted: str
) -> None:
    def attempt() -> str | None:
        # Until the operator's watch has delivered the namespace's label it would add the
        # root sidecar, and the API server would reject the pod: try again with a new one.
        name = f"plain-{next(_numbers)}"
        result = cluster.rig.kubectl(
            "create", "-n", restricted, "-f", "-", input=manifest(name, None), check=False
        )
        return result.stderr if result.returncode == 0 else None

    stderr = wait_for(attempt, timeout=30, what="a pod created with the warning")
    assert "pod-security.kubernetes.io/enforce=restricted" in stderr
    pods = cluster.pods(restricted)
    assert pods and not any(has_sidecar(p) for p in pods if p["metadata"]["name"] != "web")
