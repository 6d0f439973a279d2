"""Issue 7's other scenarios: scale-down, node drain, faults, on rollout.py's rig pieces.

Each scenario is "deploy, start the load, do one thing to the pods, wait until
every terminating pod is gone, stop the load, summarise": :class:`Workload`
deploys the test app (quiesce-injected unless told otherwise) in a namespace
of its own behind its own HAProxy, :func:`under_load` runs one action under
load and measures, and the actions here are what a user or the cluster does:
:func:`scale`, :func:`drain_node`, :func:`rollout_restart`,
:func:`delete_pod`, plus the faults :func:`consul_paused` and
:func:`kill_container`. :class:`StatusRecorder` keeps the last ``/status``
a pod's sidecar served, since the sidecar dies with its pod.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from quiesce.rig import haproxy, loadgen, rig, rollout
from quiesce.rig.nodeagent import runtime

QUIESCE = rollout.StopPolicy("quiesce", grace=None, quiesce=True)
SIDECAR = "quiesce-sidecar"
SIDECAR_PORT = 7979
NODE = "rig-node-1"


@dataclasses.dataclass
class ScenarioResult:
    """What the load saw and how long each pod took, for one action."""

    scenario: str
    profile: str
    summary: loadgen.Summary
    termination_seconds: dict[str, float]  # pod -> deletion seen .. pod gone
    action_seconds: float  # the action itself until every terminating pod was gone
    failures: list[loadgen.Result]
    details: dict[str, Any]

    def row(self) -> dict[str, Any]:
        terms = sorted(self.termination_seconds.values())
        return {
            "scenario": self.scenario,
            "sent": self.summary.sent,
            "failed": self.summary.failed,
            "reasons": self.summary.reasons,
            "p50_ms": round(self.summary.p50_ms),
            "p99_ms": round(self.summary.p99_ms),
            "max_ms": round(self.summary.max_ms),
            "terminations_s": [round(t, 1) for t in terms],
            "action_s": round(self.action_seconds, 1),
        }


class Workload:
    """The test app's Deployments in a namespace ``ro-<n>-<label>`` behind one HAProxy.

    ``groups`` are (Deployment name, replicas); every group registers the same
    Consul service, so two groups stand for one service's replicas on two nodes.
    The namespace matches the operator's ``ro-*`` so it injects the sidecar.
    """

    def __init__(
        self,
        r: rig.Rig,
        label: str,
        profile: haproxy.Profile,
        *,
        groups: Sequence[tuple[str, int]] = (("web", 3),),
        policy: rollout.StopPolicy = QUIESCE,
        converge_max: float | None = None,
        app_args: Sequence[str] = (),
    ) -> None:
        assert r.consul is not None
        self.rig = r
        self.profile = profile
        self.policy = policy
        self.groups = tuple(groups)
        self.app_args = tuple(app_args)
        self.converge_max = converge_max if converge_max is not None else rollout.ceiling(profile)
        n = next(rollout._runs)  # shared with run_one: HAProxy ports 9000+n never clash
        self.namespace, self.service, self.port = f"ro-{n}-{label}", f"web{n}", 9000 + n
        self.watch = rollout.PodWatch(r, self.namespace)
        self._lock = threading.Lock()  # the poller thread and the action both poll
        self.lb: haproxy.HAProxy | None = None

    @property
    def replicas(self) -> int:
        return sum(count for _, count in self.groups)

    def start(self, timeout: float = 180) -> Workload:
        """Apply the Deployments; return once every pod is ready and behind HAProxy."""
        r = self.rig
        assert r.consul is not None
        r.kubectl("create", "namespace", self.namespace)
        for name, count in self.groups:
            manifest = rollout.deployment(
                namespace=self.namespace,
                service=self.service,
                consul_port=r.consul.http_port,
                policy=self.policy,
                converge_max=self.converge_max,
                replicas=count,
                name=name,
                app_args=self.app_args,
            )
            r.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
        self.lb = r.load_balancer(self.service, self.profile, port=self.port)
        lb = self.lb
        rollout._wait(
            f"{self.replicas} ready pods",
            lambda: rollout._ready_pods(self.pods(), injected=self.policy.quiesce) == self.replicas,
            timeout,
        )
        rollout.wait_for_lb(
            lb,
            self.pods,
            count=self.replicas,
            injected=self.policy.quiesce,
            timeout=max(60, self.profile.discovery_interval * 4),
        )
        return self

    def pods(self) -> list[dict[str, Any]]:
        with self._lock:
            return self.watch.poll()

    def terminating(self) -> int:
        with self._lock:
            return self.watch.terminating()

    def live_pods(self, app: str | None = None) -> list[dict[str, Any]]:
        """Running pods not being deleted (of Deployment ``app`` when given)."""
        return [
            p
            for p in self.pods()
            if not p["metadata"].get("deletionTimestamp")
            and p.get("status", {}).get("podIP")
            and (app is None or p["metadata"]["labels"].get("app") == app)
        ]

    def close(self) -> None:
        if self.lb is not None:
            self.lb.stop()
            if self.lb in self.rig.load_balancers:
                self.rig.load_balancers.remove(self.lb)
        self.rig.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)

    def __enter__(self) -> Workload:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Poller(threading.Thread):
    """Polls the workload's pods in the background while the action blocks.

    A second thread keeps the last ``/status`` of every terminating pod's sidecar
    (why it converged when it did), since the sidecar dies with its pod.
    """

    def __init__(self, w: Workload, interval: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.w, self.interval = w, interval
        self.stop_event = threading.Event()
        self.terminating_ips: dict[str, str] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self._status_thread = threading.Thread(target=self._statuses, daemon=True)

    def run(self) -> None:
        self._status_thread.start()
        while not self.stop_event.is_set():
            with contextlib.suppress(Exception):
                for pod in self.w.pods():
                    ip = pod.get("status", {}).get("podIP")
                    if pod["metadata"].get("deletionTimestamp") and ip:
                        self.terminating_ips[pod["metadata"]["name"]] = ip
            self.stop_event.wait(self.interval)
        self._status_thread.join(5)

    def _statuses(self) -> None:
        while not self.stop_event.is_set():
            for name, ip in list(self.terminating_ips.items()):
                with contextlib.suppress(OSError, ValueError):
                    status = sidecar_status(ip, timeout=0.5)
                    if status.get("state") != "idle":
                        self.statuses[name] = status
            self.stop_event.wait(0.2)

    def sidecars(self) -> dict[str, dict[str, Any]]:
        """Per pod: why convergence ended, after how long, and what went wrong."""
        out = {}
        for name, st in self.statuses.items():
            phases: list[dict[str, Any]] = st.get("phases", [])
            converge = next((p for p in phases if p["name"] == "converge"), {})
            out[name] = {
                "state": st.get("state"),
                "duration": st.get("duration"),
                "convergence": st.get("convergence"),
                "quiet_window": converge.get("quiet_window"),
                "inbound_rate": converge.get("inbound_rate"),
                "errors": [e.get("error") for e in st.get("errors", [])],
                "warnings": [x.get("warning") for x in st.get("warnings", [])],
            }
        return out


def under_load(
    w: Workload,
    scenario: str,
    action: Callable[[Workload], dict[str, Any] | None],
    *,
    rate: float,
    expect_terminating: int = 1,
    settle: float = 3.0,
    tail: float = 3.0,
    max_seconds: float = 300,
    min_requests: int = 0,
) -> ScenarioResult:
    """Start the load, run ``action``, wait for every terminating pod to go, stop, summarise.

    ``expect_terminating``: how many pods the action deletes (waited for to begin
    terminating, so an action that returns at once is not mistaken for a no-op).
    ``min_requests``: keep the load on the pods that are left until about that many
    were sent (the open loop sends ``rate`` per second), so a quick action still
    leaves a sample worth counting.

    The load is the benchmark's (open loop, 20 % POST, 10-500 ms requests, 10 s
    client timeout) through the workload's HAProxy in the client namespace.
    """
    assert w.lb is not None
    r = w.rig
    out = r.workdir / f"load-{w.namespace}.jsonl"
    gen = loadgen.start(r.network.client.popen, w.lb.url, rate=rate, duration=max_seconds, out=out)
    load_started = time.monotonic()
    poller = _Poller(w)
    try:
        time.sleep(settle)
        before = set(w.watch.terminating_since)
        poller.start()
        started = time.monotonic()
        details = dict(action(w) or {})

        def deleted() -> int:
            with w._lock:
                return len(set(w.watch.terminating_since) - before)

        rollout._wait(
            f"{expect_terminating} pods to begin terminating",
            lambda: deleted() >= expect_terminating,
            60,
        )
        rollout._wait(
            "every terminating pod to be gone",
            lambda: w.terminating() == 0,
            max(0.0, started + max_seconds - time.monotonic()),
        )
        action_seconds = time.monotonic() - started
        time.sleep(tail)  # traffic on what is left only
        # + 1 s: the generator's own start
        time.sleep(max(0.0, min_requests / rate + 1.0 - (time.monotonic() - load_started)))
    finally:
        poller.stop_event.set()
        if poller.is_alive():
            poller.join(10)
        results = gen.stop()
    details["sidecars"] = poller.sidecars()
    return ScenarioResult(
        scenario=scenario,
        profile=w.profile.describe(),
        summary=loadgen.summarise(results),
        termination_seconds={
            name: w.watch.gone_at[name] - since
            for name, since in w.watch.terminating_since.items()
            if name not in before and name in w.watch.gone_at
        },
        action_seconds=action_seconds,
        failures=[x for x in results if x.failed],
        details=details,
    )


# --- actions -------------------------------------------------------------------------


def scale(w: Workload, replicas: int, deployment: str = "web") -> dict[str, Any]:
    """``kubectl scale``: the ReplicaSet deletes the surplus pods at once."""
    w.rig.kubectl("scale", f"deployment/{deployment}", f"--replicas={replicas}", "-n", w.namespace)
    return {"replicas": replicas}


def rollout_restart(w: Workload, deployment: str = "web", timeout: float = 240) -> dict[str, Any]:
    """``kubectl rollout restart``, then ``rollout status`` until every pod is replaced."""
    r = w.rig
    r.kubectl("rollout", "restart", f"deployment/{deployment}", "-n", w.namespace)
    r.kubectl(
        "rollout",
        "status",
        f"deployment/{deployment}",
        "-n",
        w.namespace,
        f"--timeout={timeout:.0f}s",
        timeout=timeout + 10,
    )
    return {}


def drain_node(
    w: Workload, *, selector: str, node: str = NODE, timeout: float = 120
) -> dict[str, Any]:
    """``kubectl drain`` (cordon, then the Eviction API per pod, waiting until they are gone).

    The rig has one node, so ``selector`` picks the pods "on the drained node";
    the others stand for the service's replicas elsewhere. The evicted pods'
    replacements stay Pending while the node is cordoned, as they would when no
    other node had room; the node is uncordoned afterwards whatever happens.
    """
    r = w.rig
    started = time.monotonic()
    try:
        out = r.kubectl(
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            f"--pod-selector={selector}",
            f"--timeout={timeout:.0f}s",
            timeout=timeout + 10,
        )
        drained = time.monotonic() - started
    finally:
        r.kubectl("uncordon", node, check=False)
    evicted = [line for line in out.stdout.splitlines() if "evicted" in line]
    return {"drain_seconds": round(drained, 1), "evicted": evicted}


def delete_pod(w: Workload, name: str) -> None:
    """``kubectl delete pod --wait=false``: the pod's own grace period."""
    w.rig.kubectl("delete", "pod", name, "-n", w.namespace, "--wait=false")


def wait_gone(w: Workload, name: str, timeout: float) -> float:
    """Seconds until pod ``name`` no longer exists (polled)."""
    started = time.monotonic()
    rollout._wait(
        f"pod {name} to be gone",
        lambda: name not in {p["metadata"]["name"] for p in w.pods()},
        timeout,
    )
    return time.monotonic() - started


@contextlib.contextmanager
def consul_paused(r: rig.Rig) -> Iterator[None]:
    """The rig's Consul agent frozen (SIGSTOP) for the block, then resumed (SIGCONT).

    A frozen agent is a hung or partitioned one: TCP connections are accepted by
    the kernel, nothing is answered, DNS queries time out. A dev agent keeps its
    catalog only in memory, so stopping and restarting the process would lose
    every registration; freezing it keeps them, as a real agent's restart would.
    """
    assert r.consul is not None
    pid = r.consul.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def container_id(pod: dict[str, Any], container: str) -> str:
    """The 64-hex ID of ``container`` from the pod's status (``rig://<id>``)."""
    status = pod.get("status", {})
    for cs in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
        if cs["name"] == container and cs.get("containerID"):
            return str(cs["containerID"]).split("://", 1)[1]
    raise LookupError(f"container {container} of {pod['metadata']['name']} has no ID yet")


def kill_container(pod: dict[str, Any], container: str) -> list[int]:
    """SIGKILL every process of ``container`` (its cgroup), as an OOM kill would."""
    cgroup = runtime.CGROUP_ROOT / pod["metadata"]["uid"] / container_id(pod, container)
    pids = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def sidecar_status(pod_ip: str, port: int = SIDECAR_PORT, timeout: float = 1.0) -> dict[str, Any]:
    """The sidecar's ``GET /status`` (from the node, as an operator's curl would)."""
    with urllib.request.urlopen(f"http://{pod_ip}:{port}/status", timeout=timeout) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


class StatusRecorder(threading.Thread):
    """Polls a pod's sidecar ``/status`` and keeps the last answer: the pod takes it along."""

    def __init__(self, pod_ip: str, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pod_ip, self.interval = pod_ip, interval
        self.last: dict[str, Any] | None = None
        self.snapshots = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.last = sidecar_status(self.pod_ip)
                self.snapshots += 1
            self.stop_event.wait(self.interval)

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.last
            if last is not None and check(last):
                return last
            time.sleep(0.05)
        raise TimeoutError(f"sidecar /status never matched; last: {self.last}")

    def stop(self) -> dict[str, Any] | None:
        self.stop_event.set()
        self.join(5)
        return self.last


def sidecar_log(r: rig.Rig, pod: dict[str, Any]) -> str:
    """The sidecar container's log as the node agent kept it (it outlives the pod)."""
    meta = pod["metadata"]
    path = (
        r.workdir
        / "node-agent"
        / "pods"
        / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        / f"{SIDECAR}.log"
    )
    return path.read_text(errors="replace") if path.exists() else ""


def events(r: rig.Rig, namespace: str, pod: str) -> list[dict[str, Any]]:
    """The pod's Events (reason, type, message)."""
    out = r.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={pod}",
        "-o",
        "json",
    )
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def delete_with_consul_down(w: Workload, *, grace: float) -> dict[str, Any]:
    """Freeze Consul, delete one pod, resume Consul once the pod is gone.

    Returns how long the pod took, the sidecar's last ``/status`` and its log.
    """
    pod = w.live_pods()[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    recorder = StatusRecorder(ip)
    recorder.start()
    try:
        recorder.wait_for(lambda s: True, 10)
        with consul_paused(w.rig):
            deleted = time.monotonic()
            delete_pod(w, name)
            wait_gone(w, name, grace + 30)
            gone = time.monotonic() - deleted
    finally:
        status = recorder.stop()
    return {"pod": name, "gone_s": round(gone, 1), "status": status, "log": sidecar_log(w.rig, pod)}


def kill_sidecar_mid_sequence(w: Workload, *, after: float, grace: float) -> dict[str, Any]:
    """Delete one pod and SIGKILL its sidecar ``after`` seconds into the shutdown sequence."""
    pod = w.live_pods()[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    recorder = StatusRecorder(ip, interval=0.1)
    recorder.start()
    try:
        recorder.wait_for(lambda s: True, 10)
        deleted = time.monotonic()
        delete_pod(w, name)
        status = recorder.wait_for(lambda s: s.get("state") == "running", 15)
        time.sleep(max(0.0, deleted + after - time.monotonic()))
        killed_at = time.monotonic() - deleted
        pids = kill_container(pod, SIDECAR)
        wait_gone(w, name, grace + 30)
        gone = time.monotonic() - deleted
    finally:
        last = recorder.stop() or {}
    return {
        "pod": name,
        "killed_at_s": round(killed_at, 1),
        "killed_pids": pids,
        "gone_s": round(gone, 1),
        "last_status": last,
        "status_when_running": status,
        "events": [
            {"reason": e.get("reason"), "type": e.get("type"), "message": e.get("message")}
            for e in events(w.rig, w.namespace, name)
        ],
    }


def write_json(results: Sequence[ScenarioResult], path: Path) -> None:
    path.write_text(json.dumps([dict(x.row(), details=x.details) for x in results], indent=2))
