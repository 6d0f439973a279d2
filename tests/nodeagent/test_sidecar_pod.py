"""The operator's injected pod runs on the agent: the sidecar image maps to this
checkout's ``quiesce sidecar``, gets its env and token, and goes Ready; deleting
the pod calls the app's preStop /prestop on the sidecar from the node."""

from __future__ import annotations

from typing import Any

import pytest
from e2e import outcomes

from quiesce import config as configuration
from quiesce import plan as plans
from quiesce import template
from quiesce.rig import rig

from .helpers import Cluster


@pytest.mark.parametrize("native", [True, False], ids=["native", "container"])
def test_an_injected_pod_gets_its_sidecar_ready_and_its_prestop_runs_through_it(
    cluster: Cluster, agent_rig: rig.Rig, native: bool
) -> None:
    assert agent_rig.consul is not None
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "app",
                "image": "quiesce/testapp:dev",
                "args": ["--name", "$(POD_NAME)", "--port", "8080"],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "ports": [{"name": "http", "containerPort": 8080}],
            }
        ]
    }
    annotations = {
        "quiesce.dev/inject": "true",
        "quiesce.dev/converge-min": "1s",
        "quiesce.dev/converge-max": "3s",
    }
    try:
        plan = plans.build_plan(annotations, spec)
    except plans.PlanError as exc:
        pytest.skip(f"plan annotations changed: {exc}")
    config = configuration.load_config({"consul": {"address": agent_rig.consul.http_addr}})
    injected = template.inject(spec, plan, config, token=template.generate_token(), native=native)
    pod = cluster.pod_manifest("p", [])
    pod["spec"] = injected.pod_spec
    cluster.apply(pod)
    ready = cluster.wait_ready("p", timeout=60)
    statuses = ready["status"]["containerStatuses"] + ready["status"].get(
        "initContainerStatuses", []
    )
    assert {s["name"] for s in statuses if s["ready"]} >= {"app", template.SIDECAR_NAME}
    cluster.delete("p")
    cluster.wait_gone("p", timeout=60)
    failed = [e for e in cluster.events("p") if e["reason"] == "FailedPreStopHook"]
    assert failed == [], "the app's preStop httpGet to the sidecar failed"
    # Not "gone within the grace" by the clock: the app exited on its stop signal, after
    # the hook returned, and was not killed when the grace ran out.
    assert outcomes.app_exit_codes(agent_rig, cluster.namespace, "p") == [0]
    assert outcomes.hook_failures(agent_rig, cluster.namespace, "p") == []
    uid = ready["metadata"]["uid"]
    log = (
        agent_rig.workdir
        / "node-agent"
        / "pods"
        / f"{cluster.namespace}_p_{uid[:8]}"
        / f"{template.SIDECAR_NAME}.log"
    )
    text = log.read_text()
    # as a regular container the sidecar gets SIGTERM in parallel with the hook: either starts it
    assert "Shutdown sequence started by" in text, text[-2000:]
    assert "Shutdown sequence finished" in text, text[-2000:]
