"""Issue 21: the sidecar's Event on its pod, and ``quiesce status`` reading it back.

Same rig as test_scenarios.py (real kube-apiserver, Consul, HAProxy with Consul DNS
discovery, the real operator and sidecar; the node agent plays the kubelet), under
light load so a failed request would show. Outcomes only: the Event exists after
the pod is gone and says what the sidecar's own log says; without ``events create``
the refusal is reported (log, metric, ``/status``) and the pod stops as planned.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import urllib.request
from typing import Any

import yaml

from e2e import outcomes
from quiesce import contract
from quiesce.operator import rbac
from quiesce.rig import haproxy, process, rig, scenarios

PROFILE = haproxy.Profile(discovery_interval=5.0)
RATE = 20
TIMED_OUT = ("ceiling", "deadline")


def _ours(r: rig.Rig, namespace: str, pod: str) -> list[dict[str, Any]]:
    """The sidecar's Events on ``pod`` (not the kubelet's or the scheduler's)."""
    return [
        e
        for e in scenarios.events(r, namespace, pod)
        if (e.get("source") or {}).get("component") == contract.EVENT_SOURCE
    ]


def _quiesce_status(r: rig.Rig, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "quiesce", "status", "--kubeconfig", str(r.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_rollouts_pods_each_leave_one_event_that_quiesce_status_shows(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    r = rig_instance
    with scenarios.Workload(r, "events", PROFILE, groups=(("web", 2),)) as w:
        old = {p["metadata"]["name"] for p in w.live_pods()}
        result = scenarios.under_load(
            w, "rollout restart", scenarios.rollout_restart, rate=RATE, expect_terminating=2
        )
        assert result.summary.failed == 0, [str(f) for f in result.failures[:20]]
        assert old <= set(w.watch.gone_at), (old, w.watch.gone_at)
        outcomes.assert_stopped_as_planned(r, w.namespace, old, busy=False)
        for pod in old:
            # the pod is gone; its Event is not
            (event,) = _ours(r, w.namespace, pod)
            (converged,) = outcomes.convergence_reasons(r, w.namespace, pod)
            want = contract.EVENT_TIMEOUT if converged in TIMED_OUT else contract.EVENT_QUIESCED
            assert (event["type"], event["reason"]) == (
                "Warning" if converged in TIMED_OUT else "Normal",
                want,
            ), event
            assert f"converged on {converged} after" in event["message"], event["message"]
            assert re.search(r"; \d+ connections? after deregistration;", event["message"])
            assert re.search(r"Deregistered 1 Consul instance \(.+\)", event["message"])
            assert event["metadata"]["labels"]["app"] == "web"
            assert event["related"]["kind"] == "ReplicaSet"
            assert event["involvedObject"]["kind"] == "Pod"
            facts = json.loads(event["metadata"]["annotations"][contract.EVENT_FACTS_ANNOTATION])
            assert facts["convergence"]["reason"] == converged
            assert facts["kind"] == "deletion"

        deployment = json.loads(
            r.kubectl("get", "deployment/web", "-n", w.namespace, "-o", "json").stdout
        )
        plan_hash = deployment["metadata"]["annotations"]["state.quiesce.dev/plan-hash"]
        report = json.loads(_quiesce_status(r, "-n", w.namespace, "deployment/web", "-o", "json"))
        (view,) = report["workloads"]
        assert (view["kind"], view["name"], view["injected"]) == ("Deployment", "web", True)
        assert view["planHash"] == plan_hash and view["errors"] == []
        by_pod = {t["pod"]: t for t in view["terminations"]}
        assert set(by_pod) == old, view["terminations"]
        for pod, t in by_pod.items():
            assert t["convergence"] == outcomes.convergence_reasons(r, w.namespace, pod)[0]
            assert isinstance(t["convergenceSeconds"], float)
            assert isinstance(t["connectionsAfterDeregistration"], int)
            assert t["reason"] in contract.EVENT_REASONS and t["when"]

        # no workload named: the Events' related ReplicaSet leads to the Deployment
        table = _quiesce_status(r, "-n", w.namespace)
        print(table)
        lines = table.splitlines()
        assert re.match(r"WORKLOAD\s+INJECTED\s+PLAN\s+STATUS", lines[0]), table
        assert re.search(rf"^deployment/web\s+yes\s+{plan_hash}\s", table, re.M), table
        for pod in old:
            assert re.search(rf"^deployment/web\s+{pod}\s+\S+\s+Quiesce\w*\s+\w+\s+[\d.]+s\s+\d+$",
                             table, re.M), table  # fmt: skip


class _MetricsRecorder(threading.Thread):
    """Keeps the last ``/metrics`` a pod's sidecar served (the pod takes it along)."""

    def __init__(self, pod_ip: str) -> None:
        super().__init__(daemon=True)
        self.url = f"http://{pod_ip}:{scenarios.SIDECAR_PORT}/metrics"
        self.last = ""
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(self.url, timeout=1) as resp,
            ):
                self.last = resp.read().decode()
            self.stop_event.wait(0.1)


def _without_events_create(r: rig.Rig, namespace: str, service_account: str) -> None:
    """Replace the operator's binding by one to a Role with every right but ``events create``."""
    r.kubectl("delete", "rolebinding", rbac.binding_name(service_account), "-n", namespace)
    role = yaml.safe_load(rbac_role_text())
    role["kind"], role["metadata"] = "Role", {"name": "no-events", "namespace": namespace}
    role["rules"] = [rule for rule in role["rules"] if "events" not in rule["resources"]]
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "no-events", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "no-events"},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
    r.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, binding]))


def rbac_role_text() -> str:
    from quiesce.rig import rollout

    return rollout.SIDECAR_CLUSTER_ROLE.read_text()


def test_without_events_create_the_refusal_is_reported_and_the_pod_stops_as_planned(
    rig_instance: rig.Rig, operator: process.ManagedProcess
) -> None:
    r = rig_instance
    # the app takes 2 s to stop after its SIGTERM, as many do: the sidecar (and its
    # /status and /metrics, read here) outlives the Event's one attempt by that much
    with scenarios.Workload(
        r, "noevents", PROFILE, groups=(("web", 2),), app_args=("--stop-delay", "2")
    ) as w:
        pod = w.live_pods()[0]
        name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
        _without_events_create(r, w.namespace, pod["spec"].get("serviceAccountName") or "default")
        can = r.kubectl(
            "auth", "can-i", "create", "events", "-n", w.namespace,
            f"--as=system:serviceaccount:{w.namespace}:default", check=False,
        )  # fmt: skip
        assert can.stdout.strip() == "no", can.stdout
        status, metrics = scenarios.StatusRecorder(ip, interval=0.1), _MetricsRecorder(ip)
        status.start()
        metrics.start()
        try:
            result = scenarios.under_load(
                w, "delete", lambda w: scenarios.delete_pod(w, name), rate=RATE
            )
        finally:
            last = status.stop()
            metrics.stop_event.set()
            metrics.join(5)
        assert result.summary.failed == 0, [str(f) for f in result.failures[:20]]
        assert name in w.watch.gone_at
        outcomes.assert_stopped_as_planned(r, w.namespace, [name], busy=False)
        assert _ours(r, w.namespace, name) == []
        log = scenarios.sidecar_log(r, pod)
        assert re.search(r"Could not post the Quiesce\w* Event on pod .* \(forbidden\)", log), log
        assert re.search(r"Shutdown sequence finished .*; Event Quiesce\w* failed\.", log), log
        # the refusal is no failure of the sequence: the Event would have said Quiesced/Timeout
        assert '"event_result": "failed"' in log
        assert last is not None and last.get("event", {}).get("result") == "failed", last
        assert last["event"]["forbidden"] is True and last["errors"] == [], last
        assert 'quiesce_sidecar_events_total{result="failed"} 1.0' in metrics.last, metrics.last
        assert 'quiesce_sidecar_events_total{result="posted"} 0.0' in metrics.last
