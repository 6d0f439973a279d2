"""Budgets outside the pod that can end its shutdown before its grace period does.

``terminationGracePeriodSeconds`` is the pod's own budget, but three cluster
mechanisms grant a terminating pod less when they are the ones ending it: a
graceful node shutdown (the kubelet's ``shutdownGracePeriod*``), the
cluster-autoscaler's scale-down (``--max-graceful-termination-sec``) and a
managed node group's drain timeout. None of them leaves a mark on the pod, so
the operator's configuration states them (``outerBudgets:``, read by
:mod:`quiesce.config`) and this module says which of them would cut a plan's
sequence short, where, and which setting to change: warnings for ``quiesce
plan`` and the operator's Events, limits for ``quiesce lint``. Pure: integers
and the pod spec in, text out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from quiesce import durations
from quiesce.plan.model import ShutdownPlan

SYSTEM_CRITICAL_PRIORITY: Final = 2_000_000_000
"""The kubelet gives pods of at least this priority the critical part of a node shutdown
(Kubernetes' ``scheduling.SystemCriticalPriority``)."""

PRIORITY_CLASSES: Final[Mapping[str, int]] = {
    "system-node-critical": 2_000_001_000,
    "system-cluster-critical": 2_000_000_000,
}
"""The built-in PriorityClasses, whose values every cluster shares."""

AUTOSCALER_MAX_GRACEFUL_TERMINATION: Final = 600 * durations.SECOND
"""The cluster-autoscaler's ``--max-graceful-termination-sec`` default (600 s)."""

_PHASE_NAMES: Final = {"kept_hook": "app hook"}


@dataclasses.dataclass(frozen=True)
class PriorityGrace:
    """One entry of the kubelet's ``shutdownGracePeriodByPodPriority``."""

    priority: int
    shutdown_grace_period_seconds: int


@dataclasses.dataclass(frozen=True)
class NodeShutdown:
    """The kubelet's graceful node shutdown, as its KubeletConfiguration spells it.

    Either the two durations (nanoseconds; 0 = the kubelet's default, shutdown off)
    or ``by_pod_priority``, never both (the kubelet refuses that too).
    """

    shutdown_grace_period: int = 0
    """The whole shutdown; regular pods get it minus the critical pods' part."""
    shutdown_grace_period_critical_pods: int = 0
    """The last part, reserved for pods of priority >= 2000000000."""
    by_pod_priority: tuple[PriorityGrace, ...] = ()
    """Per-priority budgets, sorted by priority."""


@dataclasses.dataclass(frozen=True)
class OuterBudgets:
    """Every outer budget of the cluster; None = that mechanism does not end pods here."""

    node_shutdown: NodeShutdown | None = None
    """Default: none. The kubelet's own default (0 s) turns graceful node shutdown off."""
    autoscaler_max_graceful_termination: int | None = AUTOSCALER_MAX_GRACEFUL_TERMINATION
    """Nanoseconds. Default 600 s, the cluster-autoscaler's: checked unless set ``off``."""
    node_group_drain_timeout: int | None = None
    """Nanoseconds a managed node group's drain waits before it forces pods out. Default:
    none (no such timeout is common to all providers)."""


@dataclasses.dataclass(frozen=True)
class Limit:
    """What one outer budget grants a pod, and the setting that grants it."""

    seconds: int
    gives: str
    """Who grants whom: ``a graceful node shutdown gives pods of priority 0``."""
    setting: str
    """The configured values behind ``seconds``, as the configuration names them."""
    fix: str
    """How to grant enough instead; the caller fills in ``{need}``: what the pod needs
    plus ``offset``."""
    offset: int = 0
    """Seconds the setting must exceed the pod's need by (the critical pods' reserve)."""


def pod_priority(pod_spec: Mapping[str, Any]) -> tuple[int, str]:
    """The pod's priority and how it was found (text for messages, may be empty).

    A template rarely carries ``spec.priority`` (admission fills it in from the
    PriorityClass); only the built-in classes' values are known without a cluster.
    """
    value = pod_spec.get("priority")
    if isinstance(value, int) and not isinstance(value, bool):
        return value, ""
    name = pod_spec.get("priorityClassName")
    if not isinstance(name, str) or not name:
        return 0, " (no priorityClassName)"
    if name in PRIORITY_CLASSES:
        return PRIORITY_CLASSES[name], f" ({name})"
    return 0, f" (PriorityClass {name}'s value is not known here: taken as 0)"


def limits(pod_spec: Mapping[str, Any], budgets: OuterBudgets) -> tuple[Limit, ...]:
    """What each configured outer budget grants this pod, in whole seconds."""
    found: list[Limit] = []
    if budgets.node_shutdown is not None:
        found.extend(_node_shutdown(pod_spec, budgets.node_shutdown))
    fmt = durations.format
    cap = budgets.autoscaler_max_graceful_termination
    if cap is not None:
        found.append(
            Limit(
                cap // durations.SECOND,
                "the cluster-autoscaler's scale-down gives a pod",
                f"outerBudgets.autoscalerMaxGracefulTermination {fmt(cap)}",
                "raise the autoscaler's --max-graceful-termination-sec to at least {need}"
                " (and autoscalerMaxGracefulTermination with it)",
            )
        )
    drain = budgets.node_group_drain_timeout
    if drain is not None:
        found.append(
            Limit(
                drain // durations.SECOND,
                "a node group's drain gives a pod",
                f"outerBudgets.nodeGroupDrainTimeout {fmt(drain)}",
                "raise the node group's drain timeout to at least {need}s"
                " (and nodeGroupDrainTimeout with it)",
            )
        )
    return tuple(found)


def _node_shutdown(pod_spec: Mapping[str, Any], shutdown: NodeShutdown) -> list[Limit]:
    """The kubelet's share for this pod's priority (its ``groupByPriority``)."""
    priority, how = pod_priority(pod_spec)
    gives = f"a graceful node shutdown gives pods of priority {priority}{how}"
    where = "outerBudgets.nodeShutdown"
    entries = shutdown.by_pod_priority
    if entries:
        # The entry with the highest priority <= the pod's; below all of them, the lowest.
        chosen = entries[0]
        for entry in entries:
            if entry.priority <= priority:
                chosen = entry
        seconds = chosen.shutdown_grace_period_seconds
        return [
            Limit(
                seconds,
                gives,
                f"{where}.shutdownGracePeriodByPodPriority entry priority {chosen.priority}: "
                f"{seconds}s",
                "raise that entry's shutdownGracePeriodSeconds to at least {need} (in the kubelet"
                " and here)",
            )
        ]
    total, critical = shutdown.shutdown_grace_period, shutdown.shutdown_grace_period_critical_pods
    if total <= 0:
        return []  # the kubelet's graceful node shutdown is off
    fmt = durations.format
    if priority >= SYSTEM_CRITICAL_PRIORITY:
        return [
            Limit(
                critical // durations.SECOND,
                gives,
                f"{where}.shutdownGracePeriodCriticalPods {fmt(critical)}",
                "raise the kubelet's shutdownGracePeriodCriticalPods to at least {need}s"
                " and shutdownGracePeriod by as much (in the kubelet and here)",
            )
        ]
    setting = f"{where}.shutdownGracePeriod {fmt(total)}"
    if critical:
        setting += f" − shutdownGracePeriodCriticalPods {fmt(critical)}"
    return [
        Limit(
            (total - critical) // durations.SECOND,
            gives,
            setting,
            "raise the kubelet's shutdownGracePeriod to at least {need}s (and"
            " outerBudgets.nodeShutdown with it)",
            offset=critical // durations.SECOND,
        )
    ]


def warnings(
    plan: ShutdownPlan, pod_spec: Mapping[str, Any], budgets: OuterBudgets
) -> tuple[str, ...]:
    """One sentence per outer budget shorter than the plan's grace: where the cut falls."""
    grace = plan.grace_period_seconds
    needs = "needs" if plan.grace_source == "derived" else "has a grace of"
    fmt = durations.format_seconds
    parts = " + ".join(
        f"{fmt(seconds)} {_PHASE_NAMES.get(name, name)}"
        for name, seconds in plan.budget().items()
        if seconds
    )
    found = []
    for limit in limits(pod_spec, budgets):
        if limit.seconds >= grace:
            continue
        found.append(
            f"{limit.gives} only {limit.seconds}s ({limit.setting}); the plan {needs} {grace}s "
            f"({parts}): the sequence is cut at {limit.seconds}s, {_cut(plan, limit.seconds)}; "
            f"{limit.fix.format(need=grace + limit.offset)}, or shorten the plan"
        )
    return tuple(found)


def _cut(plan: ShutdownPlan, at: int) -> str:
    """Which phase a SIGKILL at ``at`` seconds interrupts, and whether the app was told."""
    phases = plan.timeline()
    signalled = next((p.start for p in phases if p.name == "signal"), 0.0)
    during = next((p for p in phases if p.start <= at < p.end), phases[-1])
    if at < signalled:
        return f"during {during.name}, before the app gets its stop signal"
    if during.name == "exit":
        return "while the app exits (the margin)"
    return f"during {during.name}"
