"""Pods as the kubelet runs them: status, env, tokens, namespaces, probes, restarts.

Against the rig's real API server and controllers; every container is a real
process (sigscript.py, or the rig's test app).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from .conftest import read_log
from .helpers import Cluster, eventually, sig_container


def start_event(log: Path) -> dict[str, Any]:
    return eventually(lambda: [e for e in read_log(log) if e["event"] == "start"], what="start")[0]


def test_a_deployment_gets_ready_pods_with_bridge_ips_listed_ready_in_its_endpointslice(
    cluster: Cluster,
) -> None:
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [
                        {
                            "name": "app",
                            "image": "quiesce/testapp:dev",
                            "args": ["--name", "$(POD_NAME)", "--port", "8080"],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "lifecycle": {"preStop": {"sleep": {"seconds": 3}}},
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    cluster.apply(deployment, service)

    def ready_pods() -> list[dict[str, Any]] | None:
        pods = cluster.pods("app=web")
        ok = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        return ok if len(ok) == 2 else None

    pods = eventually(ready_pods, timeout=60, what="2 Running+Ready pods")
    subnet = cluster.rig.network.subnet
    ips = {p["status"]["podIP"] for p in pods}
    assert all(ipaddress.ip_address(ip) in subnet for ip in ips)
    # each pod answers on its own IP with its own name ($(POD_NAME) expanded)
    for p in pods:
        with urllib.request.urlopen(f"http://{p['status']['podIP']}:8080/", timeout=5) as r:
            assert r.read().decode().strip() == p["metadata"]["name"]

    def ready_endpoints() -> list[dict[str, Any]] | None:
        eps = cluster.endpoints("web")
        ok = [e for e in eps if e["conditions"].get("ready")]
        return eps if len(ok) == 2 else None

    eps = eventually(ready_endpoints, timeout=30, what="2 ready endpoints")
    assert {e["addresses"][0] for e in eps} == ips

    # deleting a pod: its endpoint turns terminating (serving while it still
    # answers its probe), then goes away
    victim = pods[0]
    victim_ip = victim["status"]["podIP"]
    cluster.delete(victim["metadata"]["name"])

    def terminating() -> dict[str, Any] | None:
        for e in cluster.endpoints("web"):
            if e["addresses"][0] == victim_ip and e["conditions"].get("terminating"):
                return e
        return None

    ep = eventually(terminating, timeout=10, what="endpoint terminating")
    assert ep["conditions"]["ready"] is False
    assert ep["conditions"]["serving"] is True  # its readiness probe still passes
    eventually(
        lambda: all(e["addresses"][0] != victim_ip for e in cluster.endpoints("web")),
        timeout=30,
        what="endpoint gone",
    )
    cluster.kubectl("delete", "deployment", "web", "--wait=false")


def test_a_container_that_exits_is_restarted_with_back_off_under_restart_policy_always(
    cluster: Cluster,
) -> None:
    marker = cluster.tmp / "runs.txt"
    container = {
        "name": "flaky",
        "image": "busybox",
        "command": ["sh", "-c", f"echo run >> {marker}; sleep 0.3; exit 3"],
    }
    cluster.apply(cluster.pod_manifest("p", [container]))

    def restarted() -> dict[str, Any] | None:
        pod = cluster.get("pod", "p")
        if pod is None or not pod["status"].get("containerStatuses"):
            return None
        cs = pod["status"]["containerStatuses"][0]
        return cs if cs["restartCount"] >= 2 else None

    cs = eventually(restarted, timeout=30, what="2 restarts")
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert len(marker.read_text().splitlines()) >= 3
    reasons = {e["reason"] for e in cluster.events("p")}
    assert "BackOff" in reasons


def test_a_pod_with_restart_policy_never_ends_succeeded_and_keeps_its_object(
    cluster: Cluster,
) -> None:
    container = {"name": "job", "image": "busybox", "command": ["sh", "-c", "exit 0"]}
    cluster.apply(cluster.pod_manifest("p", [container], restartPolicy="Never"))

    def done() -> dict[str, Any] | None:
        pod = cluster.get("pod", "p")
        return pod if pod and pod["status"].get("phase") == "Succeeded" else None

    pod = eventually(done, timeout=30, what="Succeeded")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"


def test_env_is_built_as_the_kubelet_builds_it(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "data": {"password": base64.b64encode(b"hunter2").decode()},
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"mode": "fast", "level": "3"},
    }
    env = [
        {"name": "A", "value": "alpha"},
        {"name": "B", "value": "$(A)-beta"},
        {"name": "ESCAPED", "value": "$$(A)"},
        {"name": "UNDEFINED", "value": "$(NOPE)"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
    ]
    container = sig_container(
        "app",
        log,
        env=env,
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        workingDir="/tmp",
    )
    container["args"] += ["--", "$(B)"]  # args are expanded too
    cluster.apply(secret, config, cluster.pod_manifest("p", [container]))
    pod = cluster.wait_ready("p")
    got = start_event(log)
    e = got["env"]
    assert e["A"] == "alpha" and e["B"] == "alpha-beta"
    assert e["ESCAPED"] == "$(A)" and e["UNDEFINED"] == "$(NOPE)"
    assert e["POD"] == "p" and e["NS"] == cluster.namespace
    assert e["UID"] == pod["metadata"]["uid"]
    assert e["POD_IP"] == pod["status"]["podIP"]
    assert e["HOST_IP"] == cluster.rig.network.host_ip
    assert e["NODE"] == "rig-node-1" and e["SA"] == "default"
    assert e["PW"] == "hunter2" and e["MODE"] == "fast"
    assert e["CFG_level"] == "3"
    assert e["KUBERNETES_SERVICE_HOST"] == cluster.rig.network.host_ip
    assert e["HOSTNAME"] == "p"
    assert got["argv"][-1] == "alpha-beta"
    assert got["cwd"] == "/tmp"


def test_the_service_account_token_is_mounted_and_the_api_server_accepts_it(
    cluster: Cluster,
) -> None:
    log = cluster.tmp / "c.jsonl"
    cluster.apply(cluster.pod_manifest("p", [sig_container("app", log)]))
    cluster.wait_ready("p")
    got = start_event(log)
    assert got["sa"] == ["ca.crt", "namespace", "token"]
    token = got["token"]
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    out = cluster.rig.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review))
    status = json.loads(out.stdout)["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"system:serviceaccount:{cluster.namespace}:default"
    assert status["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]


def test_each_container_has_its_own_cgroup_named_by_its_container_id(cluster: Cluster) -> None:
    a, b = cluster.tmp / "a.jsonl", cluster.tmp / "b.jsonl"
    cluster.apply(cluster.pod_manifest("p", [sig_container("a", a), sig_container("b", b)]))
    pod = cluster.wait_ready("p")
    ids = {c["name"]: c["containerID"] for c in pod["status"]["containerStatuses"]}
    uid = pod["metadata"]["uid"]
    for name, log in (("a", a), ("b", b)):
        cid = ids[name].removeprefix("rig://")
        assert f"pids:/quiesce/{uid}/{cid}\n" in start_event(log)["cgroup"]


def test_containers_have_their_own_pid_namespace_unless_the_pod_shares_one(
    cluster: Cluster,
) -> None:
    a, b = cluster.tmp / "a.jsonl", cluster.tmp / "b.jsonl"
    cluster.apply(cluster.pod_manifest("own", [sig_container("a", a), sig_container("b", b)]))
    cluster.wait_ready("own")
    # each main process is PID 1 of its own namespace and sees only itself
    assert start_event(a)["pid"] == 1 and start_event(b)["pid"] == 1
    assert start_event(a)["procs"] == [1]

    c, d = cluster.tmp / "c.jsonl", cluster.tmp / "d.jsonl"
    shared = cluster.pod_manifest(
        "shared", [sig_container("c", c), sig_container("d", d)], shareProcessNamespace=True
    )
    cluster.apply(shared)
    cluster.wait_ready("shared")
    pc, pd = start_event(c)["pid"], start_event(d)["pid"]
    assert pc != 1 and pd != 1  # PID 1 is the pod's pause process
    assert pc in start_event(d)["procs"]  # d sees c's process
    assert 1 in start_event(d)["procs"]


def test_init_containers_run_to_completion_then_sidecars_start_before_the_app(
    cluster: Cluster,
) -> None:
    order = cluster.tmp / "order.txt"
    side, app = cluster.tmp / "side.jsonl", cluster.tmp / "app.jsonl"
    init = {
        "name": "init",
        "image": "busybox",
        "command": ["sh", "-c", f"sleep 0.5; echo init $(date +%s.%N) >> {order}"],
    }
    sidecar = sig_container(
        "side",
        side,
        port=9000,
        restartPolicy="Always",
        startupProbe={"tcpSocket": {"port": 9000}, "periodSeconds": 1},
    )
    cluster.apply(
        cluster.pod_manifest("p", [sig_container("app", app)], initContainers=[init, sidecar])
    )
    pod = cluster.wait_ready("p")
    init_done = float(order.read_text().split()[1])
    assert init_done <= start_event(side)["t"] <= start_event(app)["t"]
    statuses = {c["name"]: c for c in pod["status"]["initContainerStatuses"]}
    assert statuses["init"]["state"]["terminated"]["reason"] == "Completed"
    assert "running" in statuses["side"]["state"] and statuses["side"]["started"] is True
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["Initialized"] == conds["ContainersReady"] == conds["Ready"] == "True"
    assert conds["PodScheduled"] == conds["PodReadyToStartContainers"] == "True"
    assert pod["status"]["startTime"]


def test_readiness_probes_come_from_the_node_and_drive_the_ready_condition(
    cluster: Cluster,
) -> None:
    flag = cluster.tmp / "ready"
    log = cluster.tmp / "c.jsonl"
    container = sig_container(
        "app",
        log,
        port=8080,
        readinessProbe={
            "exec": {"command": ["test", "-e", str(flag)]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        livenessProbe={"httpGet": {"path": "/hook", "port": 8080}, "periodSeconds": 1},
    )
    cluster.apply(cluster.pod_manifest("p", [container]))

    def ready_is(value: str) -> bool:
        pod = cluster.get("pod", "p")
        conds = {
            c["type"]: c["status"] for c in (pod or {}).get("status", {}).get("conditions", [])
        }
        return conds.get("Ready") == value

    eventually(lambda: start_event(log), what="started")
    time.sleep(1.5)
    assert ready_is("False")
    flag.touch()
    eventually(lambda: ready_is("True"), timeout=10, what="Ready")
    flag.unlink()
    eventually(lambda: ready_is("False"), timeout=10, what="not Ready")
    hooks = [e for e in read_log(log) if e["event"] == "hook"]
    assert hooks and all(h["peer"] == cluster.rig.network.host_ip for h in hooks)
    assert hooks[0]["headers"]["User-Agent"].startswith("kube-probe/")


def test_a_failing_liveness_probe_restarts_the_container(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    container = sig_container(
        "app",
        log,
        livenessProbe={"tcpSocket": {"port": 8081}, "periodSeconds": 1, "failureThreshold": 2},
    )
    cluster.apply(cluster.pod_manifest("p", [container], terminationGracePeriodSeconds=5))

    def restarted() -> dict[str, Any] | None:
        pod = cluster.get("pod", "p")
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 1 else None

    cs = eventually(restarted, timeout=30, what="a restart")
    assert cs["lastState"]["terminated"]["exitCode"] == 0  # it exited on SIGTERM
    assert any(e["reason"] == "Unhealthy" for e in cluster.events("p"))
    assert next(e["signal"] for e in read_log(log) if e["event"] == "signal") == "SIGTERM"


def test_the_agent_leaves_no_process_of_a_deleted_pod(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    cluster.apply(
        cluster.pod_manifest(
            "p",
            [sig_container("app", log, exit_on=())],
            terminationGracePeriodSeconds=1,
            shareProcessNamespace=True,
        )
    )
    cluster.wait_ready("p")
    pid_in_ns = start_event(log)["pid"]
    assert pid_in_ns != 1
    cluster.delete("p")
    cluster.wait_gone("p")
    out = subprocess.run(["pgrep", "-f", str(log)], capture_output=True, text=True).stdout
    assert out.strip() == ""


def test_the_sidecar_finds_the_apps_main_process_by_the_reported_container_id(
    cluster: Cluster,
) -> None:
    from quiesce.sidecar import signals

    log = cluster.tmp / "c.jsonl"
    cluster.apply(cluster.pod_manifest("p", [sig_container("app", log)]))
    pod = cluster.wait_ready("p")
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    main = signals.main_process(cid)
    assert main is not None
    assert str(log) in main.argv


def test_volumes_are_mounted_into_the_containers_that_name_them(cluster: Cluster) -> None:
    a, b = cluster.tmp / "a.jsonl", cluster.tmp / "b.jsonl"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "consul-token"},
        "data": {"token": base64.b64encode(b"acl-123").decode()},
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-config"},
        "data": {"app.ini": "mode=fast\n"},
    }
    writer_script = "echo shared > /shared/hello; echo $(cat /etc/consul/token) > /shared/seen"
    a_container = sig_container(
        "a",
        a,
        volumeMounts=[
            {"name": "shared", "mountPath": "/shared"},
            {"name": "token", "mountPath": "/etc/consul", "readOnly": True},
            {"name": "config", "mountPath": "/etc/app/app.ini", "subPath": "app.ini"},
            {"name": "info", "mountPath": "/etc/podinfo"},
        ],
        lifecycle={"postStart": {"exec": {"command": ["sh", "-c", writer_script]}}},
    )
    b_container = sig_container("b", b, volumeMounts=[{"name": "shared", "mountPath": "/data"}])
    pod = cluster.pod_manifest(
        "p",
        [a_container, b_container],
        volumes=[
            {"name": "shared", "emptyDir": {}},
            {"name": "token", "secret": {"secretName": "consul-token"}},
            {"name": "config", "configMap": {"name": "app-config"}},
            {
                "name": "info",
                "downwardAPI": {
                    "items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]
                },
            },
        ],
    )
    cluster.apply(secret, config, pod)
    cluster.wait_ready("p")
    ready = cluster.get("pod", "p")
    assert ready is not None
    cid = {c["name"]: c["containerID"] for c in ready["status"]["containerStatuses"]}
    from quiesce.sidecar import signals

    def in_container(name: str, path: str) -> str:
        main = signals.main_process(cid[name].split("://")[1])
        assert main is not None
        return Path(f"/proc/{main.pid}/root{path}").read_text()

    assert in_container("a", "/etc/consul/token") == "acl-123"
    assert in_container("a", "/etc/app/app.ini") == "mode=fast\n"
    assert in_container("a", "/etc/podinfo/name") == "p"
    assert in_container("a", "/shared/seen") == "acl-123\n"
    # the emptyDir is one directory: b sees what a's postStart wrote
    assert in_container("b", "/data/hello") == "shared\n"
    # the host's own paths are untouched; mount points made for the pod go with it
    assert not Path("/shared/hello").exists()
    cluster.delete("p")
    cluster.wait_gone("p")
    assert not Path("/shared").exists() and not Path("/etc/consul").exists()
    assert not Path("/etc/app/app.ini").exists() and not Path("/etc/podinfo").exists()


def test_a_container_waits_for_a_missing_secret_then_starts(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "late", "key": "pw"}}}]
    cluster.apply(cluster.pod_manifest("p", [sig_container("app", log, env=env)]))

    def waiting() -> dict[str, Any] | None:
        pod = cluster.get("pod", "p")
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        state = statuses[0]["state"] if statuses else {}
        reason = state.get("waiting", {}).get("reason")
        return state if reason == "CreateContainerConfigError" else None

    state = eventually(waiting, what="CreateContainerConfigError")
    assert "late" in state["waiting"]["message"]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "late"},
        "data": {"pw": base64.b64encode(b"finally").decode()},
    }
    cluster.apply(secret)
    cluster.wait_ready("p", timeout=30)
    assert start_event(log)["env"]["PW"] == "finally"


def test_the_agent_never_hands_out_an_address_another_namespace_of_the_rig_holds(
    cluster: Cluster,
) -> None:
    net = cluster.rig.network
    hosts = [str(h) for h in net.subnet.hosts()]
    squatter = f"{net.prefix}-squat"
    taken = set(hosts[100:])  # the agent's range: take all of it but two addresses
    keep = sorted(taken, key=lambda ip: int(ip.rsplit(".", 1)[1]))[-2:]
    subprocess.run(["ip", "netns", "add", squatter], check=True)
    try:
        for ip in taken - set(keep):
            subprocess.run(
                ["ip", "-n", squatter, "addr", "add", f"{ip}/32", "dev", "lo"], check=True
            )
        log = cluster.tmp / "c.jsonl"
        cluster.apply(cluster.pod_manifest("p", [sig_container("app", log)]))
        pod = cluster.wait_ready("p")
        assert pod["status"]["podIP"] in keep
    finally:
        subprocess.run(["ip", "netns", "del", squatter], check=False)


def test_a_rollout_restart_replaces_every_pod_through_graceful_termination(
    cluster: Cluster,
) -> None:
    labels = {"app": "roll"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "roll"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "app",
                            "image": "quiesce/testapp:dev",
                            "args": ["--name", "$(POD_NAME)"],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                            "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
                        }
                    ],
                },
            },
        },
    }
    cluster.apply(deployment)
    cluster.kubectl("rollout", "status", "deployment/roll", "--timeout=60s")
    before = {p["metadata"]["uid"] for p in cluster.pods("app=roll")}
    cluster.kubectl("rollout", "restart", "deployment/roll")
    cluster.kubectl("rollout", "status", "deployment/roll", "--timeout=90s")

    def replaced() -> list[dict[str, Any]] | None:
        pods = cluster.pods("app=roll")
        fresh = [p for p in pods if p["metadata"]["uid"] not in before]
        return pods if len(pods) == 3 and len(fresh) == 3 else None

    # The rollout's --timeout and this wait are guards, not bounds: 3 new pods, no old one.
    pods = eventually(replaced, timeout=30, what="3 new pods and no old one")
    assert all(p["status"]["phase"] == "Running" for p in pods)
    cluster.kubectl("delete", "deployment", "roll", "--wait=false")
