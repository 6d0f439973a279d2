"""The real operator in a namespace that enforces Pod Security "restricted".

Signal mode with an app whose UID the pod spec names: injected, the sidecar
runs as that UID, and the ReplicaSet's pods are admitted by the real API
server (PodSecurity admission). With an app whose UID is unknown: refused with
a Warning Event and a status naming the namespace's enforce label, instead of a
rollout the API server would stall.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from operator_rig import Cluster, OperatorProcess, deployment, injected, template_spec, wait_for

from quiesce import annotations as keys
from quiesce import template

_numbers = itertools.count(1)
APP: dict[str, Any] = {
    "name": "app",
    "image": "registry.example/web:1",
    "ports": [{"name": "http", "containerPort": 8080}],
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


@pytest.fixture
def restricted(cluster: Cluster, operator: OperatorProcess) -> Iterator[str]:
    name = f"op-psa-{next(_numbers)}"
    cluster.create_namespace(name, {template.POD_SECURITY_ENFORCE_LABEL: "restricted"})
    yield name
    cluster.delete_namespace(name)


def app(uid: int | None) -> dict[str, Any]:
    container = copy.deepcopy(APP)
    if uid is not None:
        container["securityContext"]["runAsUser"] = uid
    return container


def test_signal_mode_with_the_apps_uid_is_injected_and_its_pods_are_admitted(
    cluster: Cluster, restricted: str
) -> None:
    annotations = {keys.INJECT: "true", keys.SIGNAL: "SIGQUIT"}
    cluster.api.create(
        f"/apis/apps/v1/namespaces/{restricted}/deployments",
        deployment(restricted, annotations=annotations, spec={"containers": [app(1000)]}),
    )
    obj = injected(cluster, restricted)
    spec = template_spec(obj)
    sidecar = next(
        c for c in spec.get("initContainers") or spec["containers"]
        if c["name"] == template.SIDECAR_NAME
    )  # fmt: skip
    assert sidecar["securityContext"]["runAsUser"] == 1000
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}

    def admitted() -> list[dict[str, Any]] | None:
        pods = [
            p for p in cluster.pods(restricted)
            if any(c["name"] == template.SIDECAR_NAME
                   for c in (p["spec"].get("initContainers") or []) + p["spec"]["containers"])
        ]  # fmt: skip
        return pods or None

    wait_for(admitted, timeout=60, what=f"an injected pod admitted in {restricted}")
    assert not [e for e in cluster.events(restricted) if e.get("reason") == "FailedCreate"]


def test_signal_mode_with_an_unknown_uid_is_refused_naming_the_enforce_label(
    cluster: Cluster, restricted: str
) -> None:
    annotations = {keys.INJECT: "true", keys.SIGNAL: "SIGQUIT"}

    def refused() -> dict[str, Any] | None:
        # The operator learns the namespace's label from its own watch; a Deployment that
        # arrived first would be judged without it, so each try uses a new one.
        name = f"web-{next(_numbers)}"
        cluster.api.create(
            f"/apis/apps/v1/namespaces/{restricted}/deployments",
            deployment(restricted, name, annotations=annotations,
                       spec={"containers": [app(None)]}),
        )  # fmt: skip

        def status() -> str | None:
            obj = cluster.get("Deployment", restricted, name)
            value = (obj["metadata"].get("annotations") or {}).get(keys.STATE_STATUS)
            return str(value) if value else None

        found = wait_for(status, timeout=30, what=f"a status on {restricted}/{name}")
        if not found.startswith("error: "):
            return None
        return {"name": name, "status": found}

    result = wait_for(refused, timeout=90, what="a refusal once the label is known")
    assert "pod-security.kubernetes.io/enforce=restricted" in result["status"]
    obj = cluster.get("Deployment", restricted, result["name"])
    assert not any(
        c["name"] == template.SIDECAR_NAME for c in template_spec(obj)["containers"]
    ) and not template_spec(obj).get("initContainers")
    wait_for(
        lambda: [
            e for e in cluster.events(restricted, result["name"])
            if e.get("type") == "Warning" and "enforce=restricted" in e.get("message", "")
        ],
        timeout=30, what="the Warning Event naming the enforce label",
    )  # fmt: skip
