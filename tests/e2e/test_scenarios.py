"""Issue 7's other scenarios, end to end, each asserting what a user relies on.

Same rig as test_rollout.py (real control plane, Consul, HAProxy with Consul DNS
discovery, the real operator and sidecar; the node agent plays the kubelet).
HAProxy profile: defaults (retries 3, no redispatch, connect timeout 3 s), so a
request sent to a pod that is gone fails visibly.

Outcomes, not clocks: no request failed; each app exited on its stop signal (not
SIGKILL) after a preStop hook that returned; under steady traffic each sidecar ended
convergence on its checks, not its ceiling (:mod:`e2e.outcomes`). How long each pod
took is printed with each row and measured in docs/scenarios.md and benchmarks/.
"""

from __future__ import annotations

import json

import pytest

from e2e import outcomes
from quiesce.rig import haproxy, process, rig, rollout, scenarios

DISCOVERY = 5.0
PROFILE = haproxy.Profile(discovery_interval=DISCOVERY)
CEILING = rollout.ceiling(PROFILE)  # converge-max 14 s
# The plan's grace: deregister-timeout 5 s + converge-max 14 s + margin 10 s.
GRACE = 5 + CEILING + 10
RATE = 30
SAMPLE = 300  # requests per scenario at RATE, at the least


def _report(result: scenarios.ScenarioResult | rollout.RolloutResult) -> str:
    """The row, and why each sidecar converged when it did (for the log of a failure)."""
    row = result.row()
    if isinstance(result, scenarios.ScenarioResult):
        row["sidecars"] = result.details.get("sidecars")
    return json.dumps(row, default=str)


def _no_failures(result: scenarios.ScenarioResult | rollout.RolloutResult) -> None:
    summary = result.summary
    assert summary.failed == 0, [str(f) for f in result.failures[:20]]


def test_scale_down_3_to_1_under_load_drops_nothing(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    with scenarios.Workload(rig_instance, "scale", PROFILE) as w:
        result = scenarios.under_load(
            w,
            "scale 3 -> 1",
            lambda w: scenarios.scale(w, 1),
            rate=RATE,
            min_requests=SAMPLE,
            expect_terminating=2,
        )
    print(_report(result))
    assert result.summary.sent >= SAMPLE
    _no_failures(result)
    assert len(result.termination_seconds) == 2, result.row()
    outcomes.assert_stopped_as_planned(
        rig_instance, w.namespace, result.termination_seconds, busy=True
    )


def test_kubectl_drain_evicts_under_load_and_drops_nothing(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    # Two Deployments of one Consul service: "web-drained" stands for the replicas on
    # the drained node, "web-elsewhere" for those on other nodes (the rig has one).
    groups = (("web-drained", 2), ("web-elsewhere", 2))
    with scenarios.Workload(rig_instance, "drain", PROFILE, groups=groups) as w:
        result = scenarios.under_load(
            w,
            "kubectl drain",
            lambda w: scenarios.drain_node(w, selector="app=web-drained"),
            rate=RATE,
            min_requests=SAMPLE,
            expect_terminating=2,
        )
        node = json.loads(rig_instance.kubectl("get", "node", scenarios.NODE, "-o", "json").stdout)
    print(_report(result), result.details)
    assert not node["spec"].get("unschedulable"), "the node was left cordoned"
    assert len(result.details["evicted"]) == 2, result.details
    assert result.summary.sent >= SAMPLE
    _no_failures(result)
    assert len(result.termination_seconds) == 2, result.row()
    outcomes.assert_stopped_as_planned(
        rig_instance, w.namespace, result.termination_seconds, busy=True
    )


def test_sparse_traffic_drops_nothing(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    # 2 requests/s over 3 pods: the adaptive quiet window (ln(1000)/λ, ~10 s at
    # λ ≈ 0.7/s per pod) is longer than the 1 s default and the ceiling caps it.
    with scenarios.Workload(rig_instance, "sparse", PROFILE) as w:
        result = scenarios.under_load(
            w,
            "rollout at 2 requests/s",
            scenarios.rollout_restart,
            rate=2,
            expect_terminating=3,
            min_requests=40,
        )
    print(_report(result), json.dumps(result.details["sidecars"]))
    assert result.summary.sent >= 40
    _no_failures(result)
    assert len(result.termination_seconds) == 3, result.row()
    # Sparse: the ceiling (the LB's worst case) may decide; the deadline never does.
    outcomes.assert_stopped_as_planned(
        rig_instance, w.namespace, result.termination_seconds, busy=False
    )
    windows = [s["quiet_window"] for s in result.details["sidecars"].values()]
    assert windows and all(x is not None and x > 1.0 for x in windows), windows


def test_sidecar_as_a_regular_container_drops_nothing(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    policy = rollout.StopPolicy(
        "quiesce-container",
        grace=None,
        quiesce=True,
        annotations=(("quiesce.dev/sidecar-mode", "container"),),
    )
    with scenarios.Workload(rig_instance, "container", PROFILE, policy=policy) as w:
        spec = w.live_pods()[0]["spec"]
        result = scenarios.under_load(
            w,
            "rollout, sidecar container",
            scenarios.rollout_restart,
            rate=RATE,
            min_requests=SAMPLE,
            expect_terminating=3,
        )
    print(_report(result))
    assert scenarios.SIDECAR in [c["name"] for c in spec["containers"]]
    assert scenarios.SIDECAR not in [c["name"] for c in spec.get("initContainers", [])]
    assert result.summary.sent >= SAMPLE
    _no_failures(result)
    assert len(result.termination_seconds) == 3, result.row()
    outcomes.assert_stopped_as_planned(
        rig_instance, w.namespace, result.termination_seconds, busy=True
    )


def test_pod_deleted_while_consul_is_down_still_stops_on_its_signal(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    with scenarios.Workload(rig_instance, "consul-down", PROFILE) as w:
        result = scenarios.under_load(
            w,
            "delete a pod, Consul frozen",
            lambda w: scenarios.delete_with_consul_down(w, grace=GRACE),
            rate=RATE,
            min_requests=SAMPLE,
        )
    details = result.details
    status, log = details["status"], details["log"]
    print(_report(result), json.dumps(status), log[-3000:])
    # Nothing waits on Consul past the deadline: the hook returned in time and the app
    # stopped on its signal, not killed at the end of the grace period.
    pod = details["pod"]
    assert outcomes.app_exit_codes(rig_instance, w.namespace, pod) == [0], details
    assert outcomes.hook_failures(rig_instance, w.namespace, pod) == [], details
    # The failure is visible: in /status (errors of the deregister phase) and the log.
    assert status is not None and status["errors"], status
    assert any(e["phase"] == "deregister" for e in status["errors"]), status["errors"]
    assert "consul" in log.lower() and ("error" in log.lower() or "fail" in log.lower()), log


def test_sidecar_killed_mid_sequence_the_app_still_stops_on_its_signal(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    with scenarios.Workload(rig_instance, "sidecar-kill", PROFILE) as w:
        result = scenarios.under_load(
            w,
            "SIGKILL the sidecar 2 s into the sequence",
            lambda w: scenarios.kill_sidecar_mid_sequence(w, after=2.0, grace=GRACE),
            rate=RATE,
            min_requests=SAMPLE,
        )
    details = result.details
    print(_report(result), json.dumps(details, default=str))
    assert details["killed_pids"], details
    # The kubelet saw its hook fail (the connection died with the sidecar) and went on:
    # the app got its stop signal and exited on it, nothing waited for the grace to end.
    assert "FailedPreStopHook" in [e["reason"] for e in details["events"]], details["events"]
    assert outcomes.app_exit_codes(rig_instance, w.namespace, details["pod"]) == [0], details


@pytest.mark.parametrize("lag", [1.0, 15.0])
def test_discovery_lag_drops_nothing_and_each_pod_converges_on_its_checks(
    rig_instance: rig.Rig, operator: process.ManagedProcess, lag: float
) -> None:
    profile = haproxy.Profile(discovery_interval=lag)
    with scenarios.Workload(rig_instance, f"lag{lag:g}", profile) as w:
        result = scenarios.under_load(
            w,
            f"rollout, lag {lag:g} s",
            scenarios.rollout_restart,
            rate=RATE,
            min_requests=SAMPLE,
            expect_terminating=3,
        )
    print(_report(result), json.dumps(result.details["sidecars"]))
    assert result.summary.sent >= SAMPLE
    _no_failures(result)
    assert len(result.termination_seconds) == 3, result.row()
    # No bound on each pod's time (a fresh clone's run saw 25.7 s against a 22.5 s
    # bound at lag 15, 0 of 1,050 failed): each sidecar waits for what it observes,
    # HAProxy's next resolution anywhere in the interval, then the quiet window. That
    # it stopped on what it saw, not on its ceiling, is the outcome; the times are in
    # the row printed above and in docs/scenarios.md.
    outcomes.assert_stopped_as_planned(
        rig_instance, w.namespace, result.termination_seconds, busy=True
    )
