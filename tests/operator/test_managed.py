"""The injected-workloads gauge follows adds and removals (counted, not recounted)."""

from __future__ import annotations

import prometheus_client as prom

from quiesce.operator import runtime


def gauge_values(registry: prom.CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["kind"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "quiesce_operator_objects_managed"
    }


def test_every_kind_is_exported_at_zero_before_any_write() -> None:
    registry = prom.CollectorRegistry()
    gauge = prom.Gauge("quiesce_operator_objects_managed", "", ["kind"], registry=registry)
    runtime.Managed(gauge)
    assert gauge_values(registry) == {"Deployment": 0, "StatefulSet": 0, "DaemonSet": 0}


def test_adds_and_removals_are_idempotent_and_a_kind_change_moves_the_count() -> None:
    registry = prom.CollectorRegistry()
    gauge = prom.Gauge("quiesce_operator_objects_managed", "", ["kind"], registry=registry)
    managed = runtime.Managed(gauge)
    managed.add("a", "Deployment")
    managed.add("a", "Deployment")  # a second watch event for the same workload
    managed.add("b", "Deployment")
    managed.add("c", "StatefulSet")
    assert "a" in managed and "z" not in managed
    assert gauge_values(registry) == {"Deployment": 2, "StatefulSet": 1, "DaemonSet": 0}
    managed.add("c", "DaemonSet")  # a uid is one object: its kind cannot count twice
    managed.discard("a")
    managed.discard("a")
    managed.discard("never-seen")
    assert gauge_values(registry) == {"Deployment": 1, "StatefulSet": 0, "DaemonSet": 1}
