"""A hostile annotation gets a status and a Warning Event, and the operator carries on.

A duration of 5,000 leading zeros made the duration parser raise ValueError:
the real operator logged an uncaught exception and the Deployment got no status
and no Event. Now it gets both, and the next workload is injected as usual.
"""

from __future__ import annotations

from typing import Any

from operator_rig import Cluster, OperatorProcess, deployment, injected, wait_for

from quiesce import annotations as keys


def test_a_hostile_duration_gets_a_status_and_a_warning_and_the_operator_carries_on(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    hostile = {keys.INJECT: "true", keys.CONVERGE_MAX: "0" * 5000 + "1s"}
    cluster.api.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        deployment(namespace, "hostile", annotations=hostile),
    )

    def status() -> str | None:
        obj = cluster.get("Deployment", namespace, "hostile")
        value = (obj["metadata"].get("annotations") or {}).get(keys.STATE_STATUS)
        return str(value) if value else None

    # 90 s: on a fresh clone's loaded run the operator, just started, had not reconciled
    # anything after 30 s (its log ended at login); a bound to give up, not a measure
    assert wait_for(status, timeout=90, what="a status on the hostile Deployment").startswith(
        "error: "
    )

    def warning() -> list[dict[str, Any]]:
        return [e for e in cluster.events(namespace, "hostile") if e.get("type") == "Warning"]

    wait_for(warning, timeout=30, what="a Warning Event on the hostile Deployment")
    assert operator.alive()
    cluster.api.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment(namespace, "web")
    )
    injected(cluster, namespace, "web")
