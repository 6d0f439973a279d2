"""Every container kill is a shutdown, and every one is graceful: a pod restarted by its
liveness probe leaves Consul reversibly (maintenance), comes back passing, and the next
kill runs a sequence of its own; deleted afterwards, it is gone from Consul.

On the node agent (the kubelet's stand-in), with the operator's real template, the
sidecar as a real process reading its pod from the real API server, and the rig's
real Consul agent.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from quiesce import config as configuration
from quiesce import plan as plans
from quiesce import template
from quiesce.rig import rig

from .helpers import Cluster, eventually

_names = itertools.count(1)


def sidecar_rbac(namespace: str) -> list[dict[str, Any]]:
    """What the operator binds the workload's service account to: get its pod, read slices."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "quiesce-sidecar"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "quiesce-sidecar"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "quiesce-sidecar",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }
    return [role, binding]


class RestartingPod:
    """One injected pod whose liveness probe fails while ``kill_flag`` exists."""

    def __init__(
        self,
        cluster: Cluster,
        agent_rig: rig.Rig,
        *,
        app_args: list[str],
        native: bool,
        restart_policy: str = "Always",
    ) -> None:
        assert agent_rig.consul is not None
        self.cluster = cluster
        self.consul = agent_rig.consul
        self.name = f"relive-{next(_names)}"
        self.service = f"relive-{cluster.namespace}"
        self.service_id = f"{self.service}-{self.name}"
        self.kill_flag: Path = cluster.tmp / "kill"
        spec: dict[str, Any] = {
            "containers": [
                {
                    "name": "app",
                    "image": "quiesce/testapp:dev",
                    "args": [
                        "--name",
                        "$(POD_NAME)",
                        "--port",
                        "8080",
                        "--consul",
                        self.consul.http_addr,
                        "--service",
                        self.service,
                        "--address",
                        "$(POD_IP)",
                        "--critical-after",
                        "1m",
                        *app_args,
                    ],
                    "env": [
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                    ],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {
                        "httpGet": {"path": "/", "port": 8080},
                        "periodSeconds": 1,
                    },
                    # fails while the flag exists; the delay keeps a restarted app alive
                    # long enough for the test to remove the flag
                    "livenessProbe": {
                        "exec": {"command": ["test", "!", "-e", str(self.kill_flag)]},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                        "initialDelaySeconds": 3,
                    },
                }
            ]
        }
        annotations = {
            "quiesce.dev/inject": "true",
            "quiesce.dev/converge-min": "1s",
            "quiesce.dev/converge-max": "3s",
        }
        self.plan = plans.build_plan(annotations, spec)
        config = configuration.load_config({"consul": {"address": self.consul.http_addr}})
        injected = template.inject(
            spec, self.plan, config, token=template.generate_token(), native=native
        )
        pod = cluster.pod_manifest(self.name, [])
        pod["spec"] = {**injected.pod_spec, "restartPolicy": restart_policy}
        cluster.apply(*sidecar_rbac(cluster.namespace), pod)
        ready = cluster.wait_ready(self.name, timeout=60)
        self.ip = ready["status"]["podIP"]

    def status(self) -> dict[str, Any]:
        url = f"http://{self.ip}:{self.plan.port}/status"
        with urllib.request.urlopen(url, timeout=5) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    def status_or_none(self) -> dict[str, Any] | None:
        try:
            return self.status()
        except OSError:
            return None

    def restarts(self) -> int:
        pod = self.cluster.get("pod", self.name) or {}
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            if cs["name"] == "app":
                return int(cs["restartCount"])
        return 0

    def in_consul(self) -> dict[str, Any]:
        """Passing, and no maintenance check: what a load balancer routes to."""
        passing = [e["Service"]["ID"] for e in self.consul.healthy_instances(self.service)]
        checks = self.consul.request("GET", "/v1/agent/checks")
        maintenance = [c for c in checks if c == f"_service_maintenance:{self.service_id}"]
        return {"passing": self.service_id in passing, "maintenance": maintenance}

    def serving(self) -> bool:
        state = self.in_consul()
        return bool(state["passing"] and not state["maintenance"])

    def kill_by_liveness(self, sequence: int) -> dict[str, Any]:
        """Fail the liveness probe once; returns /status once the app is back in service."""
        before = self.restarts()
        self.kill_flag.touch()

        def started() -> bool:
            try:
                return self.status().get("sequence", 0) >= sequence
            except OSError:
                return False

        eventually(started, timeout=30, what=f"sequence {sequence} started")
        self.kill_flag.unlink()
        eventually(lambda: self.restarts() > before, timeout=60, what="the app restarted")
        self.cluster.wait_ready(self.name, timeout=60)
        eventually(self.serving, timeout=30, what="back in Consul, passing, no maintenance")
        return eventually(
            lambda: (s := self.status())["undid"] and s,
            timeout=30,
            what="the sequence recorded what it undid",
        )


@pytest.mark.parametrize(
    "app_args",
    [["--keep-registration"], ["--keep-registration", "--reregister-every", "0.3"]],
    ids=["never-deregisters", "reregisters-replacing-checks"],
)
def test_a_pod_restarted_twice_by_liveness_is_back_in_consul_each_time_then_deleted_gone(
    cluster: Cluster, agent_rig: rig.Rig, app_args: list[str]
) -> None:
    pod = RestartingPod(cluster, agent_rig, app_args=app_args, native=True)
    eventually(pod.serving, timeout=30, what="registered and passing")

    first = pod.kill_by_liveness(1)
    assert first["sequence"] == 1
    assert first["classification"]["kind"] == "restart"
    assert first["phases"][0]["name"] == "maintenance"
    assert first["phases"][0]["deregistered"] == []
    assert pod.service_id in first["phases"][0]["maintenance"]
    actions = {u["action"] for u in first["undid"]}
    if "--reregister-every" in app_args:
        # its re-registrations dropped the maintenance check; the sidecar put it back
        assert "reasserted" in actions, first["undid"]
    else:
        assert "maintenance off" in actions, first["undid"]

    second = pod.kill_by_liveness(2)
    assert second["sequence"] == 2  # a sequence of its own, not the first one joined
    assert second["classification"]["kind"] == "restart"
    assert second["trigger"] == "prestop"
    assert second["phases"][0]["name"] == "maintenance"
    assert [h["sequence"] for h in second["history"]] == [1]
    assert second["history"][0]["kind"] == "restart"

    pod.cluster.delete(pod.name)
    pod.cluster.wait_gone(pod.name, timeout=60)
    entries = pod.consul.request("GET", f"/v1/catalog/service/{pod.service}")
    assert [e["ServiceID"] for e in entries] == []


def test_the_prestop_of_a_pod_in_phase_failed_deregisters_it_rather_than_maintenance(
    cluster: Cluster, agent_rig: rig.Rig
) -> None:
    # restartPolicy Never: the killed app stays down, so whatever Consul holds afterwards
    # is what the sidecar left (the app never deregisters, and it does not come back)
    pod = RestartingPod(
        cluster, agent_rig, app_args=["--keep-registration"], native=True, restart_policy="Never"
    )
    eventually(pod.serving, timeout=30, what="registered and passing")
    # What the kubelet writes for a pod it evicts (phase Failed and a DisruptionTarget
    # condition); the node agent cannot evict, so the test writes it through the status
    # subresource. The node agent rewrites the phase on its next status write but keeps
    # conditions it does not own, so the condition alone keeps the pod "final" (no race).
    evicted = {
        "status": {
            "phase": "Failed",
            "reason": "Evicted",
            "conditions": [
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "TerminationByKubelet",
                    "message": "The node was low on resource: memory.",
                }
            ],
        }
    }
    cluster.kubectl(
        "patch", "pod", pod.name, "--subresource=status", "--type=strategic",
        "-p", json.dumps(evicted),
    )  # fmt: skip
    pod.kill_flag.touch()
    status = eventually(
        lambda: (s := pod.status_or_none()) is not None and s["state"] == "done" and s,
        timeout=60,
        what="the sequence done",
    )
    assert status["sequence"] == 1
    assert status["classification"]["kind"] == "final", status["classification"]
    first = status["phases"][0]
    # maintenance goes on while the pod is read (DNS drops it at once), then the
    # classification removes the instance, its maintenance check with it
    assert first["name"] == "deregister", first
    assert pod.service_id in [i["id"] for i in first["deregistered"]], first
    assert status["undid"] == []

    def gone_from_consul() -> dict[str, Any] | None:
        if pod.restarts() != 0:
            return None
        entries = pod.consul.request("GET", f"/v1/catalog/service/{pod.service}")
        checks = pod.consul.request("GET", "/v1/agent/checks")
        state = {
            "catalog": [e["ServiceID"] for e in entries],
            "checks": [c for c in checks if pod.service_id in c],
        }
        return None if state["catalog"] or state["checks"] else state

    eventually(gone_from_consul, timeout=30, what="no instance and no check left in Consul")
    app_state = eventually(
        lambda: next(
            (
                cs["state"].get("terminated")
                for cs in (cluster.get("pod", pod.name) or {})["status"]["containerStatuses"]
                if cs["name"] == "app"
            ),
            None,
        ),
        timeout=60,
        what="the app stopped",
    )
    assert app_state["exitCode"] == 0, app_state  # on its signal, after the hook
    # still nothing: the sidecar lifted no maintenance, and nothing registered again
    assert gone_from_consul() is not None
    assert pod.restarts() == 0


def sidecar_pid(uid: str) -> int | None:
    """The pod's sidecar process, found by the POD_UID the kubelet put in its environment."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # the process itself, not the node agent's unshare wrapper around it
        if f"POD_UID={uid}".encode() in environ and cmdline[1:4] == [b"-m", b"quiesce", b"sidecar"]:
            return int(entry.name)
    return None


def test_sigterm_to_a_regular_container_sidecar_of_a_pod_not_deleted_keeps_it_registered(
    cluster: Cluster, agent_rig: rig.Rig
) -> None:
    pod = RestartingPod(cluster, agent_rig, app_args=["--keep-registration"], native=False)
    eventually(pod.serving, timeout=30, what="registered and passing")
    uid = (cluster.get("pod", pod.name) or {})["metadata"]["uid"]
    pid = eventually(lambda: sidecar_pid(uid), timeout=10, what="the sidecar's process")
    os.kill(pid, signal.SIGTERM)

    def sidecar_restarts() -> int:
        got = cluster.get("pod", pod.name) or {}
        for cs in got.get("status", {}).get("containerStatuses") or []:
            if cs["name"] == template.SIDECAR_NAME:
                return int(cs["restartCount"])
        return 0

    # from the signal until the kubelet restarted the sidecar, the pod is never out of Consul
    seen = []
    give_up = time.monotonic() + 90
    while sidecar_restarts() == 0:
        seen.append(pod.serving())
        assert time.monotonic() < give_up, "the sidecar never exited"
        time.sleep(0.1)
    assert seen and all(seen), seen
    # the new sidecar ran no sequence
    assert eventually(lambda: pod.status_or_none(), timeout=30)["state"] == "idle"
    pod.cluster.delete(pod.name)
    pod.cluster.wait_gone(pod.name, timeout=60)
    entries = pod.consul.request("GET", f"/v1/catalog/service/{pod.service}")
    assert [e["ServiceID"] for e in entries] == []


def test_a_sidecar_killed_mid_restart_sequence_is_restarted_and_the_app_back_in_service(
    cluster: Cluster, agent_rig: rig.Rig
) -> None:
    pod = RestartingPod(cluster, agent_rig, app_args=["--keep-registration"], native=True)
    eventually(pod.serving, timeout=30, what="registered and passing")
    uid = (cluster.get("pod", pod.name) or {})["metadata"]["uid"]
    pid = eventually(lambda: sidecar_pid(uid), timeout=10, what="the sidecar's process")
    pod.kill_flag.touch()
    try:
        # mid-sequence: maintenance on, converging
        eventually(
            lambda: (
                pod.in_consul()["maintenance"]
                and (s := pod.status_or_none()) is not None
                and s["state"] == "running"
            ),
            timeout=30,
            what="sequence 1 running with maintenance on",
        )
        os.kill(pid, signal.SIGKILL)
        # nobody lifts it until a sidecar runs again
        left = pod.in_consul()
    finally:
        pod.kill_flag.unlink()
    assert left["maintenance"], left

    def container(name: str) -> dict[str, Any]:
        got = cluster.get("pod", pod.name) or {}
        statuses = got.get("status", {})
        every = statuses.get("containerStatuses", []) + statuses.get("initContainerStatuses", [])
        return next((cs for cs in every if cs["name"] == name), {})

    # the kubelet's hook failed with the sidecar and it went on: the app was restarted,
    # and so was the sidecar
    eventually(lambda: pod.restarts() >= 1, timeout=60, what="the app restarted")
    eventually(
        lambda: container(template.SIDECAR_NAME).get("restartCount", 0) >= 1,
        timeout=60,
        what="the sidecar restarted",
    )
    cluster.wait_ready(pod.name, timeout=60)
    # the new sidecar found the maintenance its predecessor left and lifted it
    eventually(pod.serving, timeout=60, what="back in Consul, passing, no maintenance")
    assert container("app").get("ready") is True
    status = eventually(lambda: pod.status_or_none(), timeout=30, what="the new sidecar")
    assert status["state"] == "idle", status

    pod.cluster.delete(pod.name)
    pod.cluster.wait_gone(pod.name, timeout=60)
    entries = pod.consul.request("GET", f"/v1/catalog/service/{pod.service}")
    assert [e["ServiceID"] for e in entries] == []


def test_a_pod_deleted_during_its_restart_sequence_is_deregistered_not_left_in_maintenance(
    cluster: Cluster, agent_rig: rig.Rig
) -> None:
    # the app never deregisters itself: whatever Consul holds afterwards is the sidecar's doing
    pod = RestartingPod(cluster, agent_rig, app_args=["--keep-registration"], native=True)
    eventually(pod.serving, timeout=30, what="registered and passing")
    pod.kill_flag.touch()
    try:
        running = eventually(
            lambda: (
                pod.in_consul()["maintenance"]
                and (s := pod.status_or_none()) is not None
                and s["state"] == "running"
                and s
            ),
            timeout=30,
            what="the restart sequence running with maintenance on",
        )
        assert running["classification"]["kind"] == "restart", running["classification"]
        cluster.delete(pod.name)
        # the running sequence becomes a deletion: the sidecar says so while it lives
        became = eventually(
            lambda: (
                (s := pod.status_or_none()) is not None
                and s["classification"].get("became") == "deletion"
                and s
            ),
            timeout=30,
            what="the restart sequence to become a deletion",
        )
    finally:
        pod.kill_flag.unlink()
    assert became["sequence"] == 1  # the same sequence, not a second one
    cluster.wait_gone(pod.name, timeout=60)
    entries = pod.consul.request("GET", f"/v1/catalog/service/{pod.service}")
    checks = pod.consul.request("GET", "/v1/agent/checks")
    assert [e["ServiceID"] for e in entries] == []
    assert [c for c in checks if pod.service_id in c] == []
