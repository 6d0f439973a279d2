"""The end-to-end proof: a rolling update under load, one stop policy at a time.

A Consul-registered test app (3 replicas, registering itself when ready and
deregistering on SIGTERM, as Spring Cloud Consul does) runs on the rig's node
agent behind HAProxy (Consul DNS discovery, in the client namespace). While the
load generator sends a steady, bounded stream of GET and POST requests through
HAProxy, ``kubectl rollout restart`` replaces every pod. The same rollout runs
with each stop policy: no hook, ``sleep 5``, a long sleep, and quiesce.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from quiesce.rig import haproxy, loadgen, process, rig

APP_PORT = 8080
_runs = itertools.count(1)


@dataclasses.dataclass(frozen=True)
class StopPolicy:
    """How the app's pods stop: what the user put in the manifest."""

    name: str
    prestop_sleep: int | None = None
    grace: int | None = 30
    quiesce: bool = False
    annotations: tuple[tuple[str, str], ...] = ()
    """Further ``quiesce.dev/*`` annotations (e.g. ``sidecar-mode``), with ``quiesce``."""

    def describe(self) -> str:
        if self.quiesce:
            return "quiesce"
        if self.prestop_sleep:
            return f"preStop sleep {self.prestop_sleep}"
        return "no hook"


def policies(discovery_interval: float) -> list[StopPolicy]:
    """The four policies of the comparison, sized for a given discovery lag."""
    long_sleep = int(max(15, discovery_interval * 3))
    return [
        StopPolicy("no-hook"),
        StopPolicy("sleep-5", prestop_sleep=5),
        # Long enough to be safe, with a grace that leaves the app its drain after it.
        StopPolicy("sleep-long", prestop_sleep=long_sleep, grace=long_sleep + 10),
        StopPolicy("quiesce", grace=None, quiesce=True),
    ]


def ceiling(profile: haproxy.Profile) -> float:
    """quiesce's converge-max for a load balancer: its worst-case lag, which the user knows."""
    return profile.worst_case_lag


@dataclasses.dataclass
class RolloutResult:
    policy: str
    profile: str
    summary: loadgen.Summary
    termination_seconds: list[float]
    rollout_seconds: float  # median of the rollouts
    rollouts: int
    failures: list[loadgen.Result]
    timeline: list[tuple[float, int]]  # (seconds since load start, pods terminating)

    def row(self) -> dict[str, Any]:
        terms = sorted(self.termination_seconds)
        return {
            "policy": self.policy,
            "profile": self.profile,
            "sent": self.summary.sent,
            "failed": self.summary.failed,
            "reasons": self.summary.reasons,
            "failure_rate": round(self.summary.failure_rate, 5),
            "p50_ms": round(self.summary.p50_ms),
            "p99_ms": round(self.summary.p99_ms),
            "max_ms": round(self.summary.max_ms),
            "termination_median_s": round(terms[len(terms) // 2], 1) if terms else None,
            "termination_max_s": round(terms[-1], 1) if terms else None,
            "rollout_s": round(self.rollout_seconds, 1),
            "rollouts": self.rollouts,
        }


def deployment(
    *,
    namespace: str,
    service: str,
    consul_port: int,
    policy: StopPolicy,
    converge_max: float,
    replicas: int = 3,
    name: str = "web",
    app_args: Sequence[str] = (),
) -> dict[str, Any]:
    """The app's Deployment, as a user would write it for ``policy``; ``app_args`` are
    more arguments of the test app (``--stop-delay 2``).

    ``name`` is the Deployment's name and its pods' ``app`` label (two Deployments
    of one Consul service stand for replicas on two nodes in the drain scenario).
    """
    container: dict[str, Any] = {
        "name": "app",
        "image": "quiesce/testapp:latest",
        "args": [
            "--name",
            "$(POD_NAME)",
            "--port",
            str(APP_PORT),
            "--address",
            "$(POD_IP)",
            "--consul",
            f"$(HOST_IP):{consul_port}",
            "--service",
            service,
            *app_args,
        ],
        "env": [
            {"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}}
            for n, p in (
                ("POD_NAME", "metadata.name"),
                ("POD_IP", "status.podIP"),
                ("HOST_IP", "status.hostIP"),
            )
        ],
        "ports": [{"name": "http", "containerPort": APP_PORT}],
        "readinessProbe": {"httpGet": {"path": "/", "port": APP_PORT}, "periodSeconds": 1},
    }
    if policy.prestop_sleep:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": policy.prestop_sleep}}}
    pod_spec: dict[str, Any] = {"containers": [container]}
    if policy.grace is not None:
        pod_spec["terminationGracePeriodSeconds"] = policy.grace
    annotations = {}
    if policy.quiesce:
        annotations = {
            "quiesce.dev/inject": "true",
            # The LB's worst-case lag, which the user knows: the ceiling.
            "quiesce.dev/converge-max": f"{converge_max:g}s",
            **dict(policy.annotations),
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


class PodWatch:
    """Polls the namespace's pods: when each began terminating and when it was gone."""

    def __init__(self, r: rig.Rig, namespace: str) -> None:
        self.rig = r
        self.namespace = namespace
        self.terminating_since: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self.seen: set[str] = set()

    def poll(self) -> list[dict[str, Any]]:
        out = self.rig.kubectl("get", "pods", "-n", self.namespace, "-o", "json")
        pods: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        now = time.monotonic()
        names = set()
        for pod in pods:
            name = pod["metadata"]["name"]
            names.add(name)
            self.seen.add(name)
            if pod["metadata"].get("deletionTimestamp"):
                self.terminating_since.setdefault(name, now)
        for name in self.seen - names:
            self.gone_at.setdefault(name, now)
            self.terminating_since.setdefault(name, now)
        return pods

    def terminating(self) -> int:
        return sum(1 for n in self.terminating_since if n not in self.gone_at)


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def _ready_pods(pods: list[dict[str, Any]], *, injected: bool) -> int:
    count = 0
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        spec = pod["spec"]
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        if injected != any(c["name"] == "quiesce-sidecar" for c in containers):
            continue
        conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
        count += conds.get("Ready") == "True"
    return count


SIDECAR_CLUSTER_ROLE = (
    Path(__file__).resolve().parents[2] / "manifests" / "rbac" / "sidecar-clusterrole.yaml"
)


def ready_addresses(pods: list[dict[str, Any]], *, injected: bool) -> set[str]:
    """``ip:port`` of the app in every ready pod (not terminating) of the wanted kind."""
    addresses = set()
    for pod in pods:
        if _ready_pods([pod], injected=injected) and pod.get("status", {}).get("podIP"):
            addresses.add(f"{pod['status']['podIP']}:{APP_PORT}")
    return addresses


def wait_for_lb(
    lb: haproxy.HAProxy,
    pods: Callable[[], list[dict[str, Any]]],
    *,
    count: int,
    injected: bool,
    timeout: float,
) -> None:
    """Until HAProxy serves exactly the ``count`` ready pods and nothing else.

    Counting its servers is not enough: right after the operator's first
    injection the replaced, uninjected pods may still sit in HAProxy (until its
    next resolution), and load started then would fail on them.
    """

    def settled() -> bool:
        wanted = ready_addresses(pods(), injected=injected)
        return len(wanted) == count and lb.active_servers() == wanted

    _wait(f"HAProxy to serve exactly the {count} ready pods", settled, timeout)


def start_operator(r: rig.Rig, *, namespaces: str = "ro-*") -> process.ManagedProcess:
    """The real ``quiesce operator``, configured for the rig's Consul agent.

    The sidecar's ClusterRole is applied as an install would (from the repo's
    manifests); without it the sidecar skips its EndpointSlice check and says so.
    """
    assert r.consul is not None
    if SIDECAR_CLUSTER_ROLE.exists():
        r.kubectl("apply", "-f", str(SIDECAR_CLUSTER_ROLE))
    config = r.workdir / "operator-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "sidecar": {"image": "quiesce/quiesce:dev"},
                "consul": {"address": f"$(HOST_IP):{r.consul.http_port}"},
            }
        )
    )
    proc = process.ManagedProcess(
        "quiesce-operator",
        [
            sys.executable,
            "-m",
            "quiesce",
            "operator",
            f"--namespace={namespaces}",
            f"--config={config}",
            f"--kubeconfig={r.kubeconfig}",
        ],
        log=r.workdir / "logs" / "quiesce-operator.log",
    ).start()
    log = proc.log
    proc.wait_ready(
        lambda: "Initial authentication has finished" in log.read_text(errors="replace"),
        timeout=60,
        what="connected to the API server",
    )
    return proc


def run_one(
    r: rig.Rig,
    policy: StopPolicy,
    profile: haproxy.Profile,
    *,
    rate: float,
    converge_max: float,
    progress: Callable[[str], None] = lambda _: None,
    min_requests: int = 0,
    max_seconds: float = 900,
) -> RolloutResult:
    """Rolling updates of 3 replicas under load with ``policy``; everything cleaned up.

    One rollout, or as many back to back as it takes to send ``min_requests``.
    """
    assert r.consul is not None
    n = next(_runs)
    namespace, service = f"ro-{n}-{policy.name}", f"web{n}"
    r.kubectl("create", "namespace", namespace)
    manifest = deployment(
        namespace=namespace,
        service=service,
        consul_port=r.consul.http_port,
        policy=policy,
        converge_max=converge_max,
    )
    r.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    watch = PodWatch(r, namespace)
    lb = r.load_balancer(service, profile, port=9000 + n)
    try:
        _wait(
            f"3 ready pods of {policy.describe()}",
            lambda: _ready_pods(watch.poll(), injected=policy.quiesce) == 3,
            180,
        )
        wait_for_lb(lb, watch.poll, count=3, injected=policy.quiesce, timeout=60)
        progress(f"{policy.describe()}: 3 pods ready and behind HAProxy; rolling them under load")
        out = r.workdir / f"load-{n}-{policy.name}.jsonl"
        gen = loadgen.start(
            r.network.client.popen, lb.url, rate=rate, duration=max_seconds, out=out
        )
        load_started = time.monotonic()
        timeline: list[tuple[float, int]] = []
        replaced: set[str] = set()
        rollout_times: list[float] = []
        time.sleep(3)
        while True:
            old = {p["metadata"]["name"] for p in watch.poll()} - set(watch.terminating_since)
            replaced |= old
            rollout_started = time.monotonic()
            r.kubectl("rollout", "restart", "deployment/web", "-n", namespace)

            def rolled(old: set[str] = old) -> bool:
                pods = watch.poll()
                timeline.append((time.monotonic() - load_started, watch.terminating()))
                live = {p["metadata"]["name"] for p in pods}
                return not (old & live) and _ready_pods(pods, injected=policy.quiesce) == 3

            _wait("the rollout to replace every pod", rolled, max_seconds)
            rollout_times.append(time.monotonic() - rollout_started)
            progress(
                f"{policy.describe()}: rollout {len(rollout_times)} done in "
                f"{rollout_times[-1]:.0f} s"
            )
            if (time.monotonic() - load_started) * rate >= min_requests:
                break
            time.sleep(2)
        time.sleep(3)  # a tail of traffic on the new pods only
        results = gen.stop()
    finally:
        lb.stop()
        r.load_balancers.remove(lb)
        r.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return RolloutResult(
        policy=policy.describe(),
        profile=profile.describe(),
        summary=loadgen.summarise(results),
        termination_seconds=[
            watch.gone_at[name] - since
            for name, since in watch.terminating_since.items()
            if name in replaced and name in watch.gone_at
        ],
        rollout_seconds=sorted(rollout_times)[len(rollout_times) // 2],
        rollouts=len(rollout_times),
        failures=[x for x in results if x.failed],
        timeline=timeline,
    )


def write_json(results: list[RolloutResult], path: Path) -> None:
    path.write_text(json.dumps([r.row() for r in results], indent=2))
