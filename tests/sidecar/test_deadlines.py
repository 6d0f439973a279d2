"""The one deadline: the plan's grace minus the margin, shorter when the pod's grace is."""

from __future__ import annotations

import pytest

from quiesce.sidecar import deadlines
from quiesce.sidecar.status import Timeline


def test_the_plans_grace_minus_the_margin_is_the_first_deadline() -> None:
    tl = Timeline(trigger="prestop")
    deadline = deadlines.from_plan(tl, grace_period_seconds=30, margin=2.5)
    assert deadline == pytest.approx(tl.origin + 27.5)
    assert tl.deadline == deadline
    assert tl.grace == {"seconds": 30.0, "source": "plan", "margin": 2.5}


@pytest.mark.parametrize("pod_grace", [None, 30, 45])
def test_a_pod_grace_that_is_not_shorter_keeps_the_plans_deadline(pod_grace: int | None) -> None:
    tl = Timeline(trigger="prestop")
    deadline = deadlines.from_plan(tl, grace_period_seconds=30, margin=2.5)
    kept = deadlines.shortened_for_pod(
        tl, deadline, pod_grace=pod_grace, grace_period_seconds=30, margin=2.5
    )
    assert kept == deadline
    assert tl.grace["source"] == "plan"


@pytest.mark.parametrize(("pod_grace", "left"), [(10, 7.5), (2, 0.0), (0, 0.0)])
def test_a_shorter_pod_grace_shortens_the_deadline_never_before_the_start(
    pod_grace: int, left: float
) -> None:
    tl = Timeline(trigger="sigterm")
    deadline = deadlines.from_plan(tl, grace_period_seconds=30, margin=2.5)
    shorter = deadlines.shortened_for_pod(
        tl, deadline, pod_grace=pod_grace, grace_period_seconds=30, margin=2.5
    )
    assert shorter == pytest.approx(tl.origin + left)
    assert tl.deadline == shorter
    assert tl.grace == {
        "seconds": float(pod_grace),
        "source": "deletionGracePeriodSeconds",
        "margin": 2.5,
    }


async def test_without_an_api_server_the_pod_is_not_read() -> None:
    tl = Timeline(trigger="prestop")
    assert await deadlines.read_pod_facts(tl, kube=None, namespace="default", name="web-0") is None
    assert tl.warnings == []


def test_a_probes_own_grace_shortens_only_a_kill_that_is_not_a_deletion() -> None:
    for kind, source in (("restart", "probe terminationGracePeriodSeconds"), ("deletion", "plan")):
        tl = Timeline(trigger="prestop")
        deadline = deadlines.from_plan(tl, grace_period_seconds=30, margin=2.5)
        deadlines.shortened_for_pod(
            tl,
            deadline,
            pod_grace=None,
            grace_period_seconds=30,
            margin=2.5,
            kind=kind,  # type: ignore[arg-type]
            probe_grace=8,
        )
        assert tl.grace["source"] == source
