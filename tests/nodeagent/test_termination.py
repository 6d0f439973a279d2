"""The kubelet's termination sequence, point by point, with real processes.

Every container here is sigscript.py: it logs each signal it gets with a
timestamp, so the tests read when the preStop hook ran, when the stop signal
came and whether SIGKILL ended it. Times are measured from the moment the
API server accepted the deletion: each event must come no sooner than the
kubelet's sequence says, and before the time of the behaviour it rules out
(ordering, not a tolerance for 2 busy cores; see ``on_time``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .conftest import read_log
from .helpers import Cluster, eventually, sig_container

EARLY = 0.5  # seconds


def first(log: Path, event: str, **match: Any) -> dict[str, Any]:
    for e in read_log(log):
        if e["event"] == event and all(e.get(k) == v for k, v in match.items()):
            return e
    raise AssertionError(f"no {event} {match} in {log}: {read_log(log)}")


def has(log: Path, event: str) -> bool:
    return any(e["event"] == event for e in read_log(log))


def started(cluster: Cluster, name: str, *logs: Path) -> None:
    cluster.wait_ready(name)
    for log in logs:
        eventually(lambda log=log: has(log, "start"), what=f"{log.name} started")


def on_time(value: float, due: float, *, before: float) -> bool:
    """Not early, and before what a wrong sequence would have taken.

    ``due``: when the kubelet's sequence says it happens (the agent must not act
    sooner; ``EARLY`` allows for the test's own clock starting after the API server
    accepted the deletion). ``before``: the time of the behaviour this rules out (the
    grace that must not apply, a serial kill, the next event), never a tolerance
    for a busy machine: a late agent on 2 shared cores is not a wrong agent.
    """
    return due - EARLY <= value < before


def test_the_grace_period_is_the_deletion_grace_period_when_set(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    stubborn = sig_container("app", log, exit_on=())
    cluster.apply(cluster.pod_manifest("p", [stubborn], terminationGracePeriodSeconds=30))
    started(cluster, "p", log)
    t0 = cluster.delete("p", "--grace-period=3")
    gone = cluster.wait_gone("p")
    term = first(log, "signal", signal="SIGTERM")
    assert on_time(term["t"] - t0, 0, before=3)
    assert not has(log, "exit"), "a process that ignores SIGTERM is SIGKILLed"
    assert on_time(gone - t0, 3, before=30)  # not the spec's 30 s


def test_the_grace_period_is_the_specs_when_the_deletion_sets_none(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    cluster.apply(
        cluster.pod_manifest(
            "p", [sig_container("app", log, exit_on=())], terminationGracePeriodSeconds=3
        )
    )
    started(cluster, "p", log)
    # Ask the API server directly (no kubectl default), so only the spec decides.
    t0 = cluster.delete("p")
    gone = cluster.wait_gone("p")
    assert on_time(first(log, "signal", signal="SIGTERM")["t"] - t0, 0, before=3)
    assert on_time(gone - t0, 3, before=30)  # not a 30 s default


def test_every_containers_kill_starts_in_parallel(cluster: Cluster) -> None:
    a, b = cluster.tmp / "a.jsonl", cluster.tmp / "b.jsonl"
    hook = {"preStop": {"sleep": {"seconds": 2}}}
    cluster.apply(
        cluster.pod_manifest(
            "p",
            [
                sig_container("a", a, lifecycle=hook),
                sig_container("b", b, lifecycle=hook),
            ],
            terminationGracePeriodSeconds=10,
        )
    )
    started(cluster, "p", a, b)
    t0 = cluster.delete("p")
    cluster.wait_gone("p")
    ta = first(a, "signal", signal="SIGTERM")["t"] - t0
    tb = first(b, "signal", signal="SIGTERM")["t"] - t0
    # both hooks ran at once: both signals come ~2 s in, not 2 s and 4 s
    assert on_time(ta, 2, before=4) and on_time(tb, 2, before=4)


def test_a_prestop_httpget_comes_from_the_node_to_the_pod_ip_with_its_headers(
    cluster: Cluster,
) -> None:
    log = cluster.tmp / "c.jsonl"
    hook = {
        "preStop": {
            "httpGet": {
                "path": "/hook?sleep=1",
                "port": "web",
                "httpHeaders": [{"name": "X-Quiesce-Token", "value": "s3cret"}],
            }
        }
    }
    container = sig_container(
        "app", log, port=8080, lifecycle=hook, ports=[{"name": "web", "containerPort": 8080}]
    )
    cluster.apply(cluster.pod_manifest("p", [container]))
    started(cluster, "p", log)
    t0 = cluster.delete("p")
    cluster.wait_gone("p")
    hooked = first(log, "hook")
    assert hooked["peer"] == cluster.rig.network.host_ip
    assert hooked["headers"]["X-Quiesce-Token"] == "s3cret"
    assert hooked["headers"]["User-Agent"].startswith("kube-lifecycle/")
    term = first(log, "signal", signal="SIGTERM")["t"]
    assert on_time(hooked["t"] - t0, 0, before=term - t0)
    # the stop signal waits for the hook's answer (~1 s)
    assert on_time(term - t0, 1, before=30)


def test_a_prestop_exec_runs_inside_the_container(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    out = cluster.tmp / "exec.txt"
    script = f'echo "$MARK $(cat /proc/self/cgroup | grep pids)" > {out}; sleep 1'
    hook = {"preStop": {"exec": {"command": ["sh", "-c", script]}}}
    container = sig_container("app", log, lifecycle=hook, env=[{"name": "MARK", "value": "m1"}])
    cluster.apply(cluster.pod_manifest("p", [container]))
    started(cluster, "p", log)
    pod = cluster.get("pod", "p")
    assert pod is not None
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://")[1]
    t0 = cluster.delete("p")
    cluster.wait_gone("p")
    text = out.read_text()
    assert text.startswith("m1 ") and cid in text, text
    assert on_time(first(log, "signal", signal="SIGTERM")["t"] - t0, 1, before=30)


def test_the_hook_time_is_subtracted_from_the_grace(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    hook = {"preStop": {"sleep": {"seconds": 2}}}
    container = sig_container("app", log, exit_on=(), lifecycle=hook)
    cluster.apply(cluster.pod_manifest("p", [container], terminationGracePeriodSeconds=5))
    started(cluster, "p", log)
    t0 = cluster.delete("p")
    gone = cluster.wait_gone("p")
    # SIGTERM after the 2 s hook; SIGKILL after the 3 s that are left: 5 s in all
    assert on_time(first(log, "signal", signal="SIGTERM")["t"] - t0, 2, before=5)
    assert not has(log, "exit")
    assert on_time(gone - t0, 5, before=7)  # 7: the hook not subtracted


def test_an_overrunning_hook_leaves_the_two_second_minimum_then_sigkill(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    hook = {"preStop": {"exec": {"command": ["sleep", "30"]}}}
    container = sig_container("app", log, exit_on=(), lifecycle=hook)
    cluster.apply(cluster.pod_manifest("p", [container], terminationGracePeriodSeconds=3))
    started(cluster, "p", log)
    t0 = cluster.delete("p")
    gone = cluster.wait_gone("p")
    # the hook is given up at the grace (3 s), SIGTERM, then the +2 s, then SIGKILL
    assert on_time(first(log, "signal", signal="SIGTERM")["t"] - t0, 3, before=30)
    assert on_time(gone - t0, 5, before=30)  # 30: waiting for the hook


class _SlowHook(ThreadingHTTPServer):
    """An HTTP server on the node that answers after ``delay`` s and notes a client hang-up."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], delay: float) -> None:
        self.delay = delay
        self.arrived: float | None = None
        self.hung_up: float | None = None
        self.answered: float | None = None
        super().__init__(address, _SlowHandler)


class _SlowHandler(BaseHTTPRequestHandler):
    server: _SlowHook

    def do_GET(self) -> None:
        self.server.arrived = time.time()
        self.connection.settimeout(0.05)
        end = time.monotonic() + self.server.delay
        while time.monotonic() < end:
            try:
                if self.connection.recv(1, socket.MSG_PEEK) == b"":
                    self.server.hung_up = time.time()
                    return
            except TimeoutError:
                pass
            except OSError:
                self.server.hung_up = time.time()
                return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.answered = time.time()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_hook(cluster: Cluster) -> Iterator[_SlowHook]:
    server = _SlowHook((cluster.rig.network.host_ip, 0), delay=6)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_hook_still_running_at_the_deadline_is_abandoned_not_cancelled(
    cluster: Cluster, slow_hook: _SlowHook
) -> None:
    log = cluster.tmp / "c.jsonl"
    host, port = slow_hook.server_address[:2]
    hook = {"preStop": {"httpGet": {"host": str(host), "port": int(port), "path": "/slow"}}}
    container = sig_container("app", log, lifecycle=hook)
    cluster.apply(cluster.pod_manifest("p", [container], terminationGracePeriodSeconds=2))
    started(cluster, "p", log)
    t0 = cluster.delete("p")
    cluster.wait_gone("p")
    assert on_time(first(log, "signal", signal="SIGTERM")["t"] - t0, 2, before=6)
    eventually(lambda: slow_hook.answered or slow_hook.hung_up, timeout=10, what="hook end")
    # the agent kept the hook's connection open past the deadline and the pod's end
    assert slow_hook.hung_up is None
    assert slow_hook.answered is not None and slow_hook.answered - t0 > 5.5


def test_a_failed_hook_gives_a_warning_event_and_termination_goes_on(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    hook = {"preStop": {"httpGet": {"path": "/", "port": 9}}}  # nothing listens on 9
    container = sig_container("app", log, lifecycle=hook)
    cluster.apply(cluster.pod_manifest("p", [container], terminationGracePeriodSeconds=20))
    started(cluster, "p", log)
    t0 = cluster.delete("p")
    cluster.wait_gone("p")
    assert on_time(first(log, "signal", signal="SIGTERM")["t"] - t0, 0, before=20)
    events = eventually(
        lambda: [e for e in cluster.events("p") if e["reason"] == "FailedPreStopHook"],
        what="FailedPreStopHook event",
    )
    assert events[0]["type"] == "Warning"
    assert events[0]["source"]["component"] == "kubelet"
    assert events[0]["involvedObject"]["fieldPath"] == "spec.containers{app}"


def test_the_stop_signal_comes_from_the_image(cluster: Cluster) -> None:
    plain, nginx = cluster.tmp / "plain.jsonl", cluster.tmp / "nginx.jsonl"
    cluster.apply(
        cluster.pod_manifest(
            "p",
            [
                sig_container("plain", plain, image="registry.example/app:1"),
                sig_container("web", nginx, image="docker.io/library/nginx:1.27"),
            ],
        )
    )
    started(cluster, "p", plain, nginx)
    cluster.delete("p")
    cluster.wait_gone("p")
    assert [e["signal"] for e in read_log(plain) if e["event"] == "signal"] == ["SIGTERM"]
    assert [e["signal"] for e in read_log(nginx) if e["event"] == "signal"] == ["SIGQUIT"]


def test_lifecycle_stop_signal_overrides_the_image(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    container = sig_container("app", log, lifecycle={"stopSignal": "SIGUSR1"})
    container["args"] += ["SIGUSR1"]
    pod = cluster.pod_manifest("p", [container])
    pod["spec"]["os"] = {"name": "linux"}
    cluster.apply(pod)
    applied = cluster.get("pod", "p")
    assert applied is not None
    if "stopSignal" not in (applied["spec"]["containers"][0].get("lifecycle") or {}):
        pytest.skip("this API server drops lifecycle.stopSignal (ContainerStopSignals gate off)")
    started(cluster, "p", log)
    cluster.delete("p")
    cluster.wait_gone("p")
    assert [e["signal"] for e in read_log(log) if e["event"] == "signal"] == ["SIGUSR1"]


def test_native_sidecars_get_prestop_at_once_and_their_signal_last_in_reverse_order(
    cluster: Cluster,
) -> None:
    app, s1, s2 = (cluster.tmp / f"{n}.jsonl" for n in ("app", "s1", "s2"))
    hook_log = cluster.tmp / "hooks.txt"

    def sidecar(name: str, log: Path) -> dict[str, Any]:
        hook = {
            "preStop": {
                "exec": {"command": ["sh", "-c", f"echo {name} $(date +%s.%N) >> {hook_log}"]}
            }
        }
        return sig_container(name, log, linger=1, restartPolicy="Always", lifecycle=hook)

    regular = sig_container("app", app, linger=1, lifecycle={"preStop": {"sleep": {"seconds": 1}}})
    cluster.apply(
        cluster.pod_manifest(
            "p",
            [regular],
            initContainers=[sidecar("s1", s1), sidecar("s2", s2)],
            terminationGracePeriodSeconds=20,
        )
    )
    started(cluster, "p", app, s1, s2)
    t0 = cluster.delete("p")
    cluster.wait_gone("p")
    hooks = {
        line.split()[0]: float(line.split()[1]) - t0 for line in hook_log.read_text().splitlines()
    }
    app_term = first(app, "signal", signal="SIGTERM")["t"] - t0
    # the sidecars' hooks run at once, before the app's own 1 s hook ends
    assert on_time(hooks["s1"], 0, before=app_term), hooks
    assert on_time(hooks["s2"], 0, before=app_term), hooks
    app_exit = first(app, "exit")["t"] - t0
    s2_term = first(s2, "signal", signal="SIGTERM")["t"] - t0
    s2_exit = first(s2, "exit")["t"] - t0
    s1_term = first(s1, "signal", signal="SIGTERM")["t"] - t0
    assert on_time(app_term, 1, before=20)
    assert app_exit <= s2_term, "a sidecar is signalled only after the app exited"
    assert s2_exit <= s1_term, "sidecars are signalled one at a time, last declared first"
    assert on_time(s2_term, 2, before=20) and on_time(s1_term, 3, before=20)


def test_the_sandbox_is_removed_and_the_pod_deleted_with_grace_zero(cluster: Cluster) -> None:
    log = cluster.tmp / "c.jsonl"
    cluster.apply(cluster.pod_manifest("p", [sig_container("app", log, port=8080)]))
    started(cluster, "p", log)
    pod = cluster.get("pod", "p")
    assert pod is not None
    ip, uid = pod["status"]["podIP"], pod["metadata"]["uid"]
    netns = f"/run/netns/{cluster.rig.network.prefix}-p{uid[:8]}"
    assert Path(netns).exists()
    with socket.create_connection((ip, 8080), timeout=2):
        pass
    cluster.delete("p")
    cluster.wait_gone("p")
    assert not Path(netns).exists()
    assert not Path(f"/sys/fs/cgroup/pids/quiesce/{uid}").exists()
    # the IP is gone: a connection now hangs (no answer to ARP), it is not refused
    with pytest.raises(OSError) as info:
        socket.create_connection((ip, 8080), timeout=1.5)
    assert not isinstance(info.value, ConnectionRefusedError)


def test_a_shorter_grace_on_a_second_deletion_cuts_the_running_kill_short(
    cluster: Cluster,
) -> None:
    log = cluster.tmp / "c.jsonl"
    hook = {"preStop": {"exec": {"command": ["sleep", "60"]}}}
    container = sig_container("app", log, exit_on=(), lifecycle=hook)
    cluster.apply(cluster.pod_manifest("p", [container], terminationGracePeriodSeconds=60))
    started(cluster, "p", log)
    cluster.delete("p")
    time.sleep(1)
    t1 = cluster.delete("p", "--grace-period=2")
    pod = cluster.get("pod", "p")
    assert pod is not None
    # The API server may shorten to less than asked: it keeps the first
    # deletion's start and moves the deadline to start + 2 s.
    grace = pod["metadata"]["deletionGracePeriodSeconds"]
    assert grace <= 2
    gone = cluster.wait_gone("p")
    # the hook is given up at the new deadline, then the 2 s minimum, then SIGKILL
    assert on_time(first(log, "signal", signal="SIGTERM")["t"] - t1, grace, before=59)
    assert on_time(gone - t1, grace + 2, before=59)


def test_a_forced_deletion_still_stops_the_containers_with_the_minimum_grace(
    cluster: Cluster,
) -> None:
    log = cluster.tmp / "c.jsonl"
    hook = {"preStop": {"exec": {"command": ["sleep", "60"]}}}
    container = sig_container("app", log, exit_on=(), lifecycle=hook)
    cluster.apply(cluster.pod_manifest("p", [container], terminationGracePeriodSeconds=60))
    started(cluster, "p", log)
    pid = first(log, "start")["pid"]
    assert pid == 1
    t0 = cluster.delete("p", "--force", "--grace-period=0")
    assert cluster.get("pod", "p") is None  # the API object is gone at once
    # calculateEffectiveGracePeriod gives 1 s (the hook's bound), then 2 s after SIGTERM
    term = eventually(
        lambda: [e for e in read_log(log) if e["event"] == "signal"], timeout=10, what="SIGTERM"
    )[0]
    assert on_time(term["t"] - t0, 1, before=60)
    out = cluster.tmp / "pgrep"

    def no_process() -> bool:
        import subprocess

        found = subprocess.run(["pgrep", "-f", str(log)], capture_output=True, text=True)
        out.write_text(found.stdout)
        return found.stdout.strip() == ""

    # Gone, well before the pod's 60 s grace: the 10 s guard is the check (1 s + 2 s due).
    eventually(no_process, timeout=10, what="processes gone")


def test_an_eviction_terminates_gracefully_and_keeps_the_disruption_condition(
    cluster: Cluster,
) -> None:
    import json

    log = cluster.tmp / "c.jsonl"
    container = sig_container("app", log, lifecycle={"preStop": {"sleep": {"seconds": 2}}})
    cluster.apply(cluster.pod_manifest("p", [container], terminationGracePeriodSeconds=10))
    started(cluster, "p", log)
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "p", "namespace": cluster.namespace},
    }
    path = f"/api/v1/namespaces/{cluster.namespace}/pods/p/eviction"
    t0 = time.time()
    cluster.rig.kubectl("create", "--raw", path, "-f", "-", input=json.dumps(eviction))
    time.sleep(1)  # the agent has written status since: others' conditions must survive it
    pod = cluster.get("pod", "p")
    assert pod is not None and pod["metadata"].get("deletionTimestamp")
    conds = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conds["DisruptionTarget"]["status"] == "True"
    assert conds["PodScheduled"]["status"] == "True"
    cluster.wait_gone("p")
    assert on_time(first(log, "signal", signal="SIGTERM")["t"] - t0, 2, before=10)
