"""The sidecar in a pod sandbox, against the rig's real Consul and HAProxy, under real load.

Per test: a pod sandbox (own network namespace and IP on the rig's bridge)
runs the app (a real HTTP server in a fake container, so the sidecar finds it
by container ID) and the sidecar (``quiesce sidecar``, as the operator runs
it). A second replica without quiesce keeps the service up. HAProxy in the
client namespace discovers both through Consul DNS SRV; the load generator
sends GET and POST through it. The node (the test process, on the bridge
address = HOST_IP) calls ``/prestop`` as the kubelet does.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from quiesce.rig import haproxy, loadgen, network, process, rig

from .helpers import APP, FakeContainer, make_plan, read_events, wait_for, wall

pytestmark = pytest.mark.rig

TOKEN = "rig-token-" + secrets.token_hex(4)
SIDECAR_PORT = 7979
APP_PORT = 8080
_lb_ports = itertools.count(18400)


@dataclass
class Pod:
    sandbox: network.PodSandbox
    app: FakeContainer
    events: Path
    sidecar: subprocess.Popen[bytes] | None
    service_id: str
    log: Path

    @property
    def ip(self) -> str:
        return self.sandbox.ip

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.ip}:{SIDECAR_PORT}/status", timeout=5) as r:
            data: dict[str, Any] = json.load(r)
        return data

    def prestop(self, token: str = TOKEN, timeout: float = 60) -> tuple[int, float]:
        """GET /prestop from the node, as the kubelet's httpGet hook; (status, seconds)."""
        req = urllib.request.Request(
            f"http://{self.ip}:{SIDECAR_PORT}/prestop", headers={"X-Quiesce-Token": token}
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, time.monotonic() - started
        except urllib.error.HTTPError as exc:
            return exc.code, time.monotonic() - started


@pytest.fixture
def containers() -> Iterator[list[FakeContainer]]:
    made: list[FakeContainer] = []
    yield made
    for c in made:
        c.stop()


@pytest.fixture
def sidecars() -> Iterator[list[subprocess.Popen[bytes]]]:
    made: list[subprocess.Popen[bytes]] = []
    yield made
    for p in made:
        if p.poll() is None:
            p.kill()
            p.wait(5)


@pytest.fixture
def service() -> str:
    return f"web{secrets.token_hex(3)}"


def start_pod(
    *,
    rig_instance: rig.Rig,
    sandbox: network.PodSandbox,
    containers: list[FakeContainer],
    sidecars: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    service: str,
    plan: dict[str, Any] | None,
    env: dict[str, str] | None = None,
    app_args: tuple[str, ...] = (),
    register: str = "agent",
) -> Pod:
    assert rig_instance.consul is not None
    events = tmp_path / f"{sandbox.name}-events.jsonl"
    app = FakeContainer(
        [sys.executable, APP, "--port", str(APP_PORT), "--events", str(events), *app_args],
        prefix=["ip", "netns", "exec", sandbox.netns],
    )
    containers.append(app)
    wait_for(lambda: process.tcp_open(sandbox.ip, APP_PORT), timeout=20)
    pod_name = f"{service}-{sandbox.name}"
    meta = {"pod-name": pod_name, "k8s-namespace": "shop", "pod-uid": f"uid-{sandbox.name}"}
    service_id = f"{service}-{sandbox.name}"
    if register == "agent":
        rig_instance.consul.register(
            {
                "ID": service_id,
                "Name": service,
                "Address": sandbox.ip,
                "Port": APP_PORT,
                "Meta": meta,
            }
        )
    else:  # agentless, consul-k8s style: a <node>-virtual node in the catalog
        rig_instance.consul.request(
            "PUT",
            "/v1/catalog/register",
            {
                "Node": f"{sandbox.name}-virtual",
                "Address": rig_instance.network.host_ip,
                "Service": {
                    "ID": service_id,
                    "Service": service,
                    "Address": sandbox.ip,
                    "Port": APP_PORT,
                    "Meta": meta,
                },
            },
        )
    sidecar = None
    log_path = tmp_path / f"{sandbox.name}-sidecar.log"
    if plan is not None:
        sidecar_env = {
            **os.environ,
            "QUIESCE_PLAN": make_plan(**plan).to_json(),
            "QUIESCE_TOKEN": TOKEN,
            "POD_NAME": pod_name,
            "POD_NAMESPACE": "shop",
            "POD_UID": f"uid-{sandbox.name}",
            "POD_IP": sandbox.ip,
            "HOST_IP": rig_instance.network.host_ip,
            "CONSUL_HTTP_ADDR": rig_instance.consul.http_addr,
            "QUIESCE_APP_CONTAINER_IDS": app.id,
            "QUIESCE_LOG_FORMAT": "json",
            **(env or {}),
        }
        sidecar_env.pop("KUBERNETES_SERVICE_HOST", None)
        log = open(log_path, "wb")  # noqa: SIM115
        sidecar = sandbox.popen(
            [sys.executable, "-m", "quiesce", "sidecar"], env=sidecar_env, stdout=log, stderr=log
        )
        sidecars.append(sidecar)
        wait_for(lambda: process.tcp_open(sandbox.ip, SIDECAR_PORT), timeout=20)
    return Pod(sandbox, app, events, sidecar, service_id, log_path)


def start_load(
    rig_instance: rig.Rig, lb: haproxy.HAProxy, out: Path, *, rate: float, duration: float
) -> subprocess.Popen[str]:
    """The load for ``duration`` seconds; it ends by itself (``finish_load`` waits)."""
    run = loadgen.start(
        rig_instance.network.client.popen, lb.url, rate=rate, duration=duration, out=out
    )
    return run.proc


def finish_load(gen: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = gen.communicate(timeout=120)
    assert gen.returncode == 0, stderr
    summary: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    summary["stderr"] = stderr
    return summary


def phase(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in status["phases"] if p["name"] == name)


@pytest.fixture
def pods(
    rig_instance: rig.Rig,
    pod_sandbox: Callable[[str], network.PodSandbox],
    containers: list[FakeContainer],
    sidecars: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    service: str,
) -> Callable[..., Pod]:
    def make(**kw: Any) -> Pod:
        return start_pod(
            rig_instance=rig_instance,
            sandbox=pod_sandbox("sc"),
            containers=containers,
            sidecars=sidecars,
            tmp_path=tmp_path,
            service=service,
            **kw,
        )

    return make


@pytest.fixture
def balancer(rig_instance: rig.Rig, service: str) -> Iterator[Callable[[float], haproxy.HAProxy]]:
    made: list[haproxy.HAProxy] = []

    def make(interval: float) -> haproxy.HAProxy:
        lb = rig_instance.load_balancer(
            service, haproxy.Profile(discovery_interval=interval), port=next(_lb_ports)
        )
        made.append(lb)
        return lb

    yield make
    for lb in made:
        lb.stop()


def wait_routed(lb: haproxy.HAProxy, *pods: Pod) -> None:
    wanted = {f"{p.ip}:{APP_PORT}" for p in pods}
    wait_for(lambda: wanted <= lb.active_servers(), timeout=30)


STEADY = {
    "deregister_timeout": 3.0,
    "converge_min": 1.0,
    "converge_max": 15.0,
    "quiet_window": 1.0,
    "margin": 5.0,
    "signal": int(signal.SIGQUIT),
    "drain_timeout": 5.0,
}


@pytest.mark.parametrize("register", ["agent", "catalog"])
def test_under_steady_load_the_pod_leaves_consul_and_haproxy_before_its_signal_and_drops_nothing(
    pods: Callable[..., Pod],
    balancer: Callable[[float], haproxy.HAProxy],
    rig_instance: rig.Rig,
    tmp_path: Path,
    register: str,
    service: str,
) -> None:
    assert rig_instance.consul is not None
    backend = "auto" if register == "agent" else "catalog"
    leaving = pods(
        plan=STEADY,
        app_args=("--exit-on", "QUIT"),
        register=register,
        env={"QUIESCE_CONSUL_BACKEND": backend},
    )
    staying = pods(plan=None, register=register)
    lb = balancer(2.0)
    wait_routed(lb, leaving, staying)
    gen = start_load(rig_instance, lb, tmp_path / "load.jsonl", rate=50, duration=20)
    time.sleep(9)  # the sidecar samples the traffic rate every 5 s while idle
    code, took = leaving.prestop()
    assert code == 200
    # the hook returned: Consul and HAProxy have let go of the pod
    assert f"{leaving.ip}:{APP_PORT}" not in lb.active_servers()
    assert leaving.service_id not in {
        e["Service"]["ID"] for e in rig_instance.consul.healthy_instances(service)
    }
    summary = finish_load(gen)
    status = leaving.status()
    converge = phase(status, "converge")
    assert converge["reason"] in ("quiet", "consul"), converge
    # ~25 requests/s reach this replica (50/s over two); λ averages over the sidecar's
    # life (up to 60 s), quiet time before the load included
    rate = converge["inbound_rate"]
    assert rate > 5, converge
    expected = min(max(1.0, math.log(1000) / rate), STEADY["converge_max"])
    assert converge["quiet_window"] == pytest.approx(expected, rel=0.01)
    assert [i["id"] for i in phase(status, "deregister")["deregistered"]] == [leaving.service_id]
    assert phase(status, "deregister")["deregistered"][0]["via"] == (
        "agent" if register == "agent" else "catalog"
    )
    # the app got SIGQUIT only after quiet was observed, and no request after it
    events = read_events(leaving.events)
    signals_got = [e for e in events if e["event"] == "signal"]
    assert [e["signal"] for e in signals_got] == ["SIGQUIT"]
    assert signals_got[0]["t"] >= wall(converge["ended_at"]) - 0.01
    served = [e for e in events if e["event"] == "request"]
    assert served, "the leaving pod never served a request"
    assert all(e["t"] < signals_got[0]["t"] for e in served)
    assert phase(status, "drain")["outcome"] == "ok"
    assert status["errors"] == []
    assert status["state"] == "done"
    assert summary["failed"] == 0, summary
    print(
        f"\n{register}: hook took {took:.2f} s; {converge['reason']} after "
        f"{status['convergence']['after']:.2f} s; load {summary}"
    )


def test_under_sparse_traffic_the_adaptive_window_waits_long_enough_and_drops_nothing(
    pods: Callable[..., Pod],
    balancer: Callable[[float], haproxy.HAProxy],
    rig_instance: rig.Rig,
    tmp_path: Path,
) -> None:
    plan = {**STEADY, "converge_max": 12.0, "quiet_window": 0.5, "drain_timeout": 3.0}
    leaving = pods(plan=plan, app_args=("--exit-on", "QUIT"))
    staying = pods(plan=None)
    lb = balancer(2.0)
    wait_routed(lb, leaving, staying)
    gen = start_load(rig_instance, lb, tmp_path / "load.jsonl", rate=2, duration=24)
    time.sleep(8)
    code, _ = leaving.prestop()
    assert code == 200
    summary = finish_load(gen)
    status = leaving.status()
    assert status["state"] == "done"
    converge = phase(status, "converge")
    # λ ≈ 2/s: the window is ln(1000)/λ ≈ 3.5 s (never below 0.5 s, never past 12 s)
    assert 1.5 <= converge["quiet_window"] <= 12.0, converge
    assert status["convergence"]["after"] >= converge["quiet_window"] - 0.1
    assert summary["failed"] == 0, summary
    assert f"{leaving.ip}:{APP_PORT}" not in lb.active_servers()
    print(
        f"\nsparse: window {converge['quiet_window']:.2f} s at λ={converge['inbound_rate']:.2f}/s;"
        f" {converge['reason']} after {status['convergence']['after']:.2f} s; load {summary}"
    )


def test_prestop_from_the_client_namespace_or_without_token_does_nothing(
    pods: Callable[..., Pod], rig_instance: rig.Rig
) -> None:
    assert rig_instance.consul is not None
    pod = pods(plan=STEADY)
    assert pod.prestop(token="wrong")[0] == 403
    curl = [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        f"X-Quiesce-Token: {TOKEN}",
        f"http://{pod.ip}:{SIDECAR_PORT}/prestop",
    ]
    answer = rig_instance.network.client.run(curl, capture_output=True, text=True, timeout=10)
    assert answer.stdout == "403"
    assert pod.status()["state"] == "idle"
    assert pod.service_id in rig_instance.consul.request("GET", "/v1/agent/services")


def test_the_sidecars_own_sigterm_runs_the_sequence_and_prestop_joins_it(
    pods: Callable[..., Pod], rig_instance: rig.Rig
) -> None:
    """As a regular container the kubelet signals the sidecar while calling the hook."""
    assert rig_instance.consul is not None
    plan = {**STEADY, "converge_max": 3.0, "signal": None, "drain_timeout": 0.0}
    pod = pods(plan=plan)
    assert pod.sidecar is not None
    pod.sidecar.send_signal(signal.SIGTERM)
    code, _ = pod.prestop()
    assert code == 200
    status = pod.status()
    assert status["trigger"] == "sigterm"
    assert [j["trigger"] for j in status["joined"]] == ["prestop"]
    assert pod.service_id not in rig_instance.consul.request("GET", "/v1/agent/services")
    assert pod.sidecar.wait(10) == 0


def test_native_sidecar_exits_promptly_on_sigterm(pods: Callable[..., Pod]) -> None:
    pod = pods(plan=STEADY, env={"QUIESCE_SIDECAR_MODE": "native"})
    assert pod.sidecar is not None
    pod.sidecar.send_signal(signal.SIGTERM)
    assert pod.sidecar.wait(10) == 0


def test_consul_unreachable_the_sequence_still_ends_and_says_why(
    pods: Callable[..., Pod], rig_instance: rig.Rig
) -> None:
    closed = f"{rig_instance.network.host_ip}:{process.free_port(rig_instance.network.host_ip)}"
    plan = {
        **STEADY,
        "converge_max": 3.0,
        "deregister_timeout": 2.0,
        "signal": None,
        "drain_timeout": 0.0,
    }
    pod = pods(plan=plan, env={"CONSUL_HTTP_ADDR": closed})
    code, _ = pod.prestop()
    assert code == 200
    status = pod.status()
    assert status["state"] == "done"
    assert phase(status, "deregister")["outcome"] == "failed"
    assert any(closed in e["error"] for e in status["errors"])
    with urllib.request.urlopen(f"http://{pod.ip}:{SIDECAR_PORT}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert 'quiesce_sidecar_deregistration_failures_total{backend="auto"}' in metrics
    log = pod.sandbox.name + "-sidecar.log"
    assert log  # every failure is also a log line naming the address (checked in the unit tests)


def test_drain_holds_the_hook_until_the_request_in_flight_is_answered(
    pods: Callable[..., Pod], rig_instance: rig.Rig
) -> None:
    plan = {
        **STEADY,
        "converge_max": 1.0,
        "converge_min": 0.0,
        "signal": None,
        "drain_timeout": 6.0,
    }
    pod = pods(plan=plan)
    slow = rig_instance.network.client.popen(
        [
            "curl",
            "-s",
            "-m",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            f"http://{pod.ip}:{APP_PORT}/slow?ms=2500",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    code, took = pod.prestop()
    assert code == 200
    stdout, _ = slow.communicate(timeout=15)
    assert stdout == "200"
    status = pod.status()
    drain = phase(status, "drain")
    assert drain["waiting_for"] == "in-flight requests"
    assert drain["outcome"] == "ok"
    answered = [e for e in read_events(pod.events) if e.get("path", "").startswith("/slow")]
    assert len(answered) == 1
    # the hook returned only once the answer had been sent
    assert wall(drain["ended_at"]) >= answered[0]["t"] - 0.05
    assert took >= 2.0


def test_shutdown_url_is_posted_after_haproxy_let_go_and_nothing_is_dropped(
    pods: Callable[..., Pod],
    balancer: Callable[[float], haproxy.HAProxy],
    rig_instance: rig.Rig,
    tmp_path: Path,
) -> None:
    plan = {
        **STEADY,
        "signal": None,
        "shutdown_url": f"http://127.0.0.1:{APP_PORT}/shutdown",
    }
    leaving = pods(plan=plan)
    staying = pods(plan=None)
    lb = balancer(2.0)
    wait_routed(lb, leaving, staying)
    gen = start_load(rig_instance, lb, tmp_path / "load.jsonl", rate=30, duration=16)
    time.sleep(7)
    code, _ = leaving.prestop()
    assert code == 200
    summary = finish_load(gen)
    status = leaving.status()
    sig = phase(status, "signal")
    assert (sig["mode"], sig["status"]) == ("url", 200)
    events = read_events(leaving.events)
    shutdown = [e for e in events if e["event"] == "shutdown"]
    assert len(shutdown) == 1
    assert shutdown[0]["t"] >= wall(phase(status, "converge")["ended_at"]) - 0.01
    assert all(e["t"] < shutdown[0]["t"] for e in events if e["event"] == "request")
    assert phase(status, "drain")["outcome"] == "ok"  # held until the app exited
    assert summary["failed"] == 0, summary
