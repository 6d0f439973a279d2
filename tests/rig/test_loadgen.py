"""The load generator counts what a user would see: every failure, with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from quiesce.rig import haproxy, loadgen, network, process, rig


def _app(sandbox: network.PodSandbox, name: str) -> None:
    sandbox.popen(
        [sys.executable, "-m", "quiesce.rig.testapp", "--name", name, "--bind", sandbox.ip],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not process.tcp_open(sandbox.ip, 8080):
        assert time.monotonic() < deadline, f"{name} not listening"
        time.sleep(0.1)


def test_summary_counts_failures_by_reason_and_percentiles() -> None:
    results = [loadgen.Result(i / 10, "GET", "ok", 0.010 + i / 1000) for i in range(98)]
    results += [
        loadgen.Result(9.8, "POST", "http 503", 3.0),
        loadgen.Result(9.9, "GET", "timeout", 5.0),
    ]
    s = loadgen.summarise(results)
    assert (s.sent, s.failed) == (100, 2)
    assert s.reasons == {"http 503": 1, "timeout": 1}
    assert s.max_ms == 5000.0
    assert s.p99_ms == 5000.0
    assert s.failure_rate == 0.02


def test_a_pod_vanishing_under_load_shows_up_as_failures_and_slow_requests(
    rig_instance: rig.Rig, pod_sandbox: Callable[[str], network.PodSandbox], tmp_path: Path
) -> None:
    assert rig_instance.consul is not None
    pods = [pod_sandbox("lg"), pod_sandbox("lg")]
    for i, pod in enumerate(pods):
        _app(pod, f"lg{i}")
        rig_instance.consul.register(
            {"ID": f"lg-{i}", "Name": "lg", "Address": pod.ip, "Port": 8080}
        )
    lb = rig_instance.load_balancer("lg", haproxy.Profile(discovery_interval=3.0), port=8383)
    deadline = time.monotonic() + 20
    while len(lb.active_servers()) < 2:
        assert time.monotonic() < deadline, "HAProxy did not fill both slots"
        time.sleep(0.2)
    out = tmp_path / "results.jsonl"
    gen = rig_instance.network.client.popen(
        loadgen.command(lb.url, rate=40, duration=6, out=out, timeout=5),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    # No hook: the pod leaves Consul and its IP disappears at the same moment.
    rig_instance.consul.deregister("lg-1")
    pods[1].remove()
    stdout, stderr = gen.communicate(timeout=60)
    assert gen.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    results = loadgen.load(out)
    assert summary["sent"] == len(results) == 240
    # HAProxy keeps routing to the vanished IP until its next resolution: requests
    # sent there either fail or wait out the connect timeout (3 s) before a retry.
    assert summary["failed"] > 0 or summary["max_ms"] >= 3000, summary
    assert "failed at" in stderr or summary["failed"] == 0
