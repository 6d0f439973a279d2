"""The headline, end to end: a rolling update under load drops requests without
quiesce and none with it.

Real kube-apiserver, controller-manager, scheduler, Consul, HAProxy (Consul DNS
discovery every 5 s), the real ``quiesce operator`` and sidecar; the node agent
plays the kubelet. A shorter run than ``benchmarks/rollout.py`` (which holds
the >= 10,000-request bar), with the same assertions on the outcome.
"""

from __future__ import annotations

from quiesce.rig import haproxy, process, rig, rollout

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


def test_with_quiesce_a_rollout_drops_nothing_and_each_pod_stops_within_its_budget(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    ceiling = rollout.ceiling(PROFILE)
    result = rollout.run_one(
        rig_instance, _policy("quiesce"), PROFILE, rate=40, converge_max=ceiling
    )
    assert result.summary.sent >= 200
    assert result.summary.failed == 0, [str(f) for f in result.failures[:20]]
    # The slowest request (500 ms) finishes inside the app's own drain.
    assert result.summary.max_ms < 3000, result.row()
    assert len(result.termination_seconds) == 3
    # Every pod is gone within its budget: the ceiling plus the app's drain and the
    # node's own bookkeeping; never the 27 s grace period.
    assert max(result.termination_seconds) <= ceiling + 5, result.row()
