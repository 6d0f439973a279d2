"""Outer budgets against a plan: who grants a pod how long, and where the cut falls."""

from __future__ import annotations

from typing import Any

import pytest

from quiesce import plan
from quiesce.plan import outer

S = 1_000_000_000
SPEC: dict[str, Any] = {"containers": [{"name": "app"}]}
#: 3s deregister + 20s converge + 10s margin = 33s.
PLAN = plan.build_plan({"quiesce.dev/deregister-timeout": "3s"}, SPEC, plan.PlanDefaults())
PARTS = "(3s deregister + 20s converge + 10s margin)"
KUBELET = outer.OuterBudgets(
    node_shutdown=outer.NodeShutdown(30 * S, 10 * S), autoscaler_max_graceful_termination=None
)


def test_the_plan_is_the_one_the_texts_below_describe() -> None:
    assert PLAN.grace_period_seconds == 33 and PLAN.grace_source == "derived"


NODE_CRITICAL = {"priority": True, "priorityClassName": "system-node-critical"}  # True: no int


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, (0, " (no priorityClassName)")),
        ({"priority": 1000}, (1000, "")),
        (NODE_CRITICAL, (2000001000, " (system-node-critical)")),
        (
            {"priorityClassName": "system-cluster-critical"},
            (2000000000, " (system-cluster-critical)"),
        ),
        (
            {"priorityClassName": "batch"},
            (0, " (PriorityClass batch's value is not known here: taken as 0)"),
        ),
    ],
)
def test_the_pods_priority_comes_from_the_template_or_the_built_in_classes(
    spec: dict[str, Any], expected: tuple[int, str]
) -> None:
    assert outer.pod_priority(spec) == expected


def test_a_regular_pod_gets_the_node_shutdown_minus_the_critical_part() -> None:
    assert outer.warnings(PLAN, SPEC, KUBELET) == (
        "a graceful node shutdown gives pods of priority 0 (no priorityClassName) only 20s "
        "(outerBudgets.nodeShutdown.shutdownGracePeriod 30s − shutdownGracePeriodCriticalPods "
        f"10s); the plan needs 33s {PARTS}: the sequence is cut at 20s, during converge, before "
        "the app gets its stop signal; raise the kubelet's shutdownGracePeriod to at least 43s "
        "(and outerBudgets.nodeShutdown with it), or shorten the plan",
    )


def test_a_critical_pod_gets_the_critical_part() -> None:
    spec = {**SPEC, "priorityClassName": "system-cluster-critical"}
    assert outer.warnings(PLAN, spec, KUBELET) == (
        "a graceful node shutdown gives pods of priority 2000000000 (system-cluster-critical) "
        "only 10s (outerBudgets.nodeShutdown.shutdownGracePeriodCriticalPods 10s); the plan "
        f"needs 33s {PARTS}: the sequence is cut at 10s, during converge, before the app gets "
        "its stop signal; raise the kubelet's shutdownGracePeriodCriticalPods to at least 33s "
        "and shutdownGracePeriod by as much (in the kubelet and here), or shorten the plan",
    )


def test_a_node_shutdown_long_enough_says_nothing() -> None:
    enough = outer.OuterBudgets(
        node_shutdown=outer.NodeShutdown(43 * S, 10 * S), autoscaler_max_graceful_termination=None
    )
    assert outer.warnings(PLAN, SPEC, enough) == ()
    off = outer.OuterBudgets(
        node_shutdown=outer.NodeShutdown(0, 0), autoscaler_max_graceful_termination=None
    )
    assert outer.warnings(PLAN, SPEC, off) == (), "shutdownGracePeriod 0 is the kubelet's off"


BY_PRIORITY = outer.OuterBudgets(
    node_shutdown=outer.NodeShutdown(
        by_pod_priority=(outer.PriorityGrace(0, 10), outer.PriorityGrace(1000, 40))
    ),
    autoscaler_max_graceful_termination=None,
)


@pytest.mark.parametrize(
    ("priority", "granted", "entry"),
    [(-5, 10, 0), (0, 10, 0), (999, 10, 0), (1000, 40, 1000), (2000000000, 40, 1000)],
)
def test_by_priority_a_pod_gets_the_highest_entry_not_above_its_priority(
    priority: int, granted: int, entry: int
) -> None:
    (limit,) = outer.limits({"priority": priority}, BY_PRIORITY)
    assert limit.seconds == granted
    assert limit.setting == (
        f"outerBudgets.nodeShutdown.shutdownGracePeriodByPodPriority entry priority {entry}: "
        f"{granted}s"
    )


def test_by_priority_the_warning_names_the_entry_to_raise() -> None:
    assert outer.warnings(PLAN, {**SPEC, "priority": 500}, BY_PRIORITY) == (
        "a graceful node shutdown gives pods of priority 500 only 10s "
        "(outerBudgets.nodeShutdown.shutdownGracePeriodByPodPriority entry priority 0: 10s); "
        f"the plan needs 33s {PARTS}: the sequence is cut at 10s, during converge, before the "
        "app gets its stop signal; raise that entry's shutdownGracePeriodSeconds to at least 33 "
        "(in the kubelet and here), or shorten the plan",
    )
    assert outer.warnings(PLAN, {**SPEC, "priority": 1000}, BY_PRIORITY) == ()


def test_the_autoscalers_600s_are_checked_by_default() -> None:
    long = plan.build_plan({"quiesce.dev/grace-period": "700s"}, SPEC, plan.PlanDefaults())
    assert outer.warnings(long, SPEC, outer.OuterBudgets()) == (
        "the cluster-autoscaler's scale-down gives a pod only 600s "
        "(outerBudgets.autoscalerMaxGracefulTermination 10m0s); the plan has a grace of 700s "
        "(5s deregister + 20s converge + 11m15s margin): the sequence is cut at 600s, while the "
        "app exits (the margin); raise the autoscaler's --max-graceful-termination-sec to at "
        "least 700 (and autoscalerMaxGracefulTermination with it), or shorten the plan",
    )
    exactly = plan.build_plan({"quiesce.dev/grace-period": "600s"}, SPEC, plan.PlanDefaults())
    assert outer.warnings(exactly, SPEC, outer.OuterBudgets()) == ()
    off = outer.OuterBudgets(autoscaler_max_graceful_termination=None)
    assert outer.warnings(long, SPEC, off) == ()


def test_a_node_group_drain_timeout_is_checked_when_set() -> None:
    drain = outer.OuterBudgets(node_group_drain_timeout=30 * S)
    assert outer.warnings(PLAN, SPEC, drain) == (
        "a node group's drain gives a pod only 30s (outerBudgets.nodeGroupDrainTimeout 30s); "
        f"the plan needs 33s {PARTS}: the sequence is cut at 30s, while the app exits (the "
        "margin); raise the node group's drain timeout to at least 33s (and "
        "nodeGroupDrainTimeout with it), or shorten the plan",
    )
    assert outer.warnings(PLAN, SPEC, outer.OuterBudgets(node_group_drain_timeout=33 * S)) == ()


def test_every_short_budget_gets_its_own_warning_in_order() -> None:
    everything = outer.OuterBudgets(
        node_shutdown=outer.NodeShutdown(20 * S),
        autoscaler_max_graceful_termination=25 * S,
        node_group_drain_timeout=30 * S,
    )
    found = outer.warnings(PLAN, SPEC, everything)
    assert [w.split(" only ")[0] for w in found] == [
        "a graceful node shutdown gives pods of priority 0 (no priorityClassName)",
        "the cluster-autoscaler's scale-down gives a pod",
        "a node group's drain gives a pod",
    ]
    assert "(outerBudgets.nodeShutdown.shutdownGracePeriod 20s);" in found[0]
    assert "at least 33s (and" in found[0], "no critical part: no reserve to add"


def test_a_cut_in_a_signalled_phase_names_it_without_the_missing_signal() -> None:
    drained = plan.build_plan(
        {"quiesce.dev/drain-timeout": "10s", "quiesce.dev/signal": "SIGTERM"},
        SPEC,
        plan.PlanDefaults(),
    )
    assert [(p.name, p.start) for p in drained.timeline()][2:4] == [("signal", 25), ("drain", 25)]
    (text,) = outer.warnings(drained, SPEC, outer.OuterBudgets(node_group_drain_timeout=30 * S))
    assert "the sequence is cut at 30s, during drain;" in text
