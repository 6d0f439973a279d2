"""The headline, end to end: a rolling update under load drops requests without
quiesce and none with it.

Real kube-apiserver, controller-manager, scheduler, Consul, HAProxy (Consul DNS
discovery every 5 s), the real ``quiesce operator`` and sidecar; the node agent
plays the kubelet. A shorter run than ``benchmarks/rollout.py`` (which holds
the >= 10,000-request bar and measures the times), with the same assertions on
the outcome: no request failed, and each pod stopped as planned (e2e.outcomes).
"""

from __future__ import annotations

from typing import Any

import pytest

from e2e import outcomes
from quiesce.rig import haproxy, process, rig, rollout, scenarios

DISCOVERY = 5.0
PROFILE = haproxy.Profile(discovery_interval=DISCOVERY)


def _policy(name: str) -> rollout.StopPolicy:
    return next(p for p in rollout.policies(DISCOVERY) if p.name == name)


def test_without_a_hook_a_rollout_drops_requests(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    result = rollout.run_one(
        rig_instance, _policy("no-hook"), PROFILE, rate=40, converge_max=rollout.ceiling(PROFILE)
    )
    assert result.summary.sent >= 200
    assert result.summary.failed >= 1, result.row()


def test_with_quiesce_a_rollout_drops_nothing_and_each_pod_stops_on_its_signal(
    rig_instance: rig.Rig, operator: process.ManagedProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    watches: list[Recorded] = []

    class Recorded(rollout.PodWatch):
        """run_one's watch, kept: the namespace, and which pods went with a sidecar."""

        def __init__(self, r: rig.Rig, namespace: str) -> None:
            super().__init__(r, namespace)
            self.injected: set[str] = set()
            watches.append(self)

        def poll(self) -> list[dict[str, Any]]:
            pods = super().poll()
            for pod in pods:
                spec = pod["spec"]
                names = [c["name"] for c in spec["containers"] + spec.get("initContainers", [])]
                if scenarios.SIDECAR in names:
                    self.injected.add(pod["metadata"]["name"])
            return pods

    monkeypatch.setattr(rollout, "PodWatch", Recorded)
    ceiling = rollout.ceiling(PROFILE)
    result = rollout.run_one(
        rig_instance, _policy("quiesce"), PROFILE, rate=40, converge_max=ceiling
    )
    print(result.row())
    assert result.summary.sent >= 200
    # No latency bound either: with HAProxy's defaults (no redispatch) a request sent to
    # a pod that is gone fails after the connect timeout, so it counts here.
    assert result.summary.failed == 0, [str(f) for f in result.failures[:20]]
    assert len(result.termination_seconds) == 3
    # Outcomes, not clocks (the times are in the row above and in benchmarks/): each
    # replaced pod's sidecar ended convergence on what it observed, not its ceiling,
    # the hook returned, and the app stopped on its signal rather than SIGKILL.
    # (The first pods, created before the operator injected the Deployment, had none.)
    (watch,) = watches
    replaced = watch.injected & set(watch.gone_at)
    assert len(replaced) == 3, (watch.injected, watch.gone_at)
    outcomes.assert_stopped_as_planned(rig_instance, watch.namespace, replaced, busy=True)
