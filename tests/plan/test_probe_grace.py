"""A liveness or startup probe's own terminationGracePeriodSeconds bounds a kill by it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from quiesce import plan

from .specs import web


def with_probes(**probes: dict[str, Any]) -> dict[str, Any]:
    spec = web()
    spec["containers"][0].update(probes)
    return spec


def test_a_plan_without_probe_graces_has_none_and_keeps_its_json() -> None:
    p = plan.build_plan({"quiesce.dev/inject": "true"}, web())
    assert p.probe_grace_seconds is None
    assert "probe_grace_seconds" not in json.loads(p.to_json())


def test_the_shortest_liveness_or_startup_probe_grace_is_the_plans() -> None:
    spec = with_probes(
        livenessProbe={"tcpSocket": {"port": 8081}, "terminationGracePeriodSeconds": 12},
        startupProbe={"tcpSocket": {"port": 8081}, "terminationGracePeriodSeconds": 7},
    )
    p = plan.build_plan({"quiesce.dev/inject": "true"}, spec)
    assert p.probe_grace_seconds == 7
    assert any("terminationGracePeriodSeconds 7" in n for n in p.notes)
    assert plan.ShutdownPlan.from_json(p.to_json()) == p


def test_a_readiness_probes_grace_is_not_a_kill_budget() -> None:
    spec = with_probes(
        readinessProbe={"httpGet": {"path": "/r", "port": 8080}, "terminationGracePeriodSeconds": 3}
    )
    assert plan.build_plan({"quiesce.dev/inject": "true"}, spec).probe_grace_seconds is None


@pytest.mark.parametrize("value", ["10", 0, -1, True])
def test_a_bad_probe_grace_is_an_error_naming_its_place(value: Any) -> None:
    spec = with_probes(
        livenessProbe={"tcpSocket": {"port": 8081}, "terminationGracePeriodSeconds": value}
    )
    with pytest.raises(plan.PlanError) as caught:
        plan.build_plan({"quiesce.dev/inject": "true"}, spec)
    assert [e.annotation for e in caught.value.errors] == [
        "spec.containers[app].livenessProbe.terminationGracePeriodSeconds"
    ]


def test_a_serialised_plan_may_carry_a_probe_grace_but_not_a_mistyped_one() -> None:
    data = json.loads(plan.build_plan({"quiesce.dev/inject": "true"}, web()).to_json())
    data["probe_grace_seconds"] = 5
    assert plan.ShutdownPlan.from_json(json.dumps(data)).probe_grace_seconds == 5
    data["probe_grace_seconds"] = "5"
    with pytest.raises(plan.PlanFormatError):
        plan.ShutdownPlan.from_json(json.dumps(data))
