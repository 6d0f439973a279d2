"""The README's walk-through, run as written on the rig with the chart's operator.

Helm installs quiesce as the README says; the node agent runs the chart's pods
(the operator in-cluster with the chart's RBAC and configuration, the injected
sidecars, the pre-delete hook's Job). ``web`` is the rig's test app: it registers
itself with the node's Consul agent at ``$(HOST_IP):8500`` (the chart's default
address), deregisters itself on SIGTERM, and is reached only through HAProxy
following Consul DNS. Load runs from the README's ``rollout restart`` to after
its pod deletion, and nothing may fail. Then ``helm uninstall`` runs its hook,
which restores ``web``, and nothing of quiesce is left.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e import outcomes

from install import chartkit, readme
from quiesce.rig import consul, haproxy, loadgen, rig, rollout
from quiesce.sidecar import settings

pytestmark = pytest.mark.rig
#: HAProxy re-resolves every 2 s: its worst case (8 s) is inside the default converge-max (20 s).
PROFILE = haproxy.Profile(discovery_interval=2.0)
GRACE = 35  # the plan's grace with the chart's defaults, which the README shows
RATE = 20
IDLE_SAMPLE_INTERVAL = settings.Settings.idle_sample_interval  # the sidecar's default


def users_deployment() -> dict[str, object]:
    """``web`` as its owner wrote it: no hook, no grace of its own, nothing of quiesce."""
    return rollout.deployment(
        namespace="default", service="web", consul_port=consul.STANDARD_HTTP_PORT,
        policy=rollout.StopPolicy("own", grace=None), converge_max=0,
    )  # fmt: skip


@contextlib.contextmanager
def watching(watch: rollout.PodWatch) -> Iterator[None]:
    """Poll the pods in the background: when each began terminating and was gone."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                watch.poll()
            stop.wait(0.3)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def first_json(text: str) -> dict[str, object]:
    line = next(line for line in text.splitlines() if line.startswith("{"))
    body: dict[str, object] = json.loads(line)
    return body


def test_the_walkthrough_as_written(running_cluster: rig.Rig, tmp_path: Path) -> None:
    r = running_cluster
    assert r.consul is not None and r.consul.http_port == consul.STANDARD_HTTP_PORT, (
        "the rig's Consul is not on port 8500 of the node address (taken?): the chart's "
        "default consul.address would not reach it"
    )
    shell = readme.Shell(r, tmp_path / "bin")
    annotate, roll = readme.blocks("walkthrough", "Annotate"), readme.blocks("walkthrough", "Watch")
    live_status, terminating_status, operator_metrics, after_uninstall = readme.blocks(
        "walkthrough", "Read a pod"
    )
    helm_uninstall = readme.blocks("uninstall")[0]
    before = chartkit.snapshot(r)
    watch = rollout.PodWatch(r, "default")
    lb: haproxy.HAProxy | None = None
    load: loadgen.Running | None = None
    try:
        for block in readme.blocks("install", "With Helm"):
            shell.run(block)
        r.kubectl(
            "-n", chartkit.NAMESPACE, "wait", "--for=condition=Ready", "pod",
            "quiesce-operator-0", "quiesce-operator-1", "--timeout=120s", timeout=150,
        )  # fmt: skip
        r.kubectl("apply", "-f", "-", input=yaml.safe_dump(users_deployment()))
        lb = r.load_balancer("web", PROFILE, port=8899)
        rollout.wait_for_lb(lb, watch.poll, count=3, injected=False, timeout=120)
        uninjected = set(watch.seen)

        # Annotate it: injected, evented, rolled.
        out = "".join(shell.run(block, timeout=240) for block in annotate)
        print(out)
        assert "ok: injected plan " in out and f"grace {GRACE}s, native sidecar" in out, out
        assert "Injected" in out and "successfully rolled out" in out, out
        rollout.wait_for_lb(lb, watch.poll, count=3, injected=True, timeout=120)
        injected = {p["metadata"]["name"] for p in watch.poll()}

        # Watch it roll, and read /status and the metrics, under load.
        results = tmp_path / "load.jsonl"
        load = loadgen.start(r.network.client.popen, lb.url, rate=RATE, duration=900, out=results)
        time.sleep(2)
        with watching(watch):
            assert "successfully rolled out" in "".join(shell.run(b, timeout=360) for b in roll)
            # A reader's pace: the new pods are behind HAProxy, and their sidecars have
            # sampled the socket table twice while idle (the rate needs two samples).
            rollout.wait_for_lb(lb, watch.poll, count=3, injected=True, timeout=120)
            time.sleep(2 * IDLE_SAMPLE_INTERVAL + 1)
            live = shell.run(live_status)
            terminating = shell.run(terminating_status, timeout=120)
            print(live, terminating)
            metrics = shell.run(operator_metrics)
            rollout.wait_for_lb(lb, watch.poll, count=3, injected=True, timeout=120)
        time.sleep(2)
        summary = loadgen.summarise(load.stop())
        assert summary.sent >= 100 and summary.failed == 0, summary

        # Each injected pod stopped when its traffic had: its sidecar converged on what it
        # saw (not its ceiling), the hook returned, the app exited on its signal (the
        # seconds are printed; they are a measurement, not this test's bound).
        stopped = {
            name: round(watch.gone_at[name] - watch.terminating_since[name], 1)
            for name in injected if name in watch.gone_at
        }  # fmt: skip
        print(f"seconds from deletion to gone: {stopped}")
        assert len(stopped) == 3, (injected, watch.gone_at)
        with_sidecar = set(watch.gone_at) - uninjected
        outcomes.assert_stopped_as_planned(r, "default", with_sidecar, busy=True)

        # /status: idle while running, with the traffic it sees; the timeline while stopping.
        idle = first_json(live)
        assert idle["state"] == "idle" and float(str(idle["inbound_rate"])) > 0, live
        (rate_line,) = [line for line in live.splitlines() if line.startswith("quiesce_")]
        assert float(rate_line.split()[-1]) > 0, rate_line
        stopping = first_json(terminating)
        assert stopping["state"] == "running" and stopping["trigger"] == "prestop", terminating
        phases = [p["name"] for p in stopping["phases"]]  # type: ignore[attr-defined]
        # a second in, deregistration is usually done (on a loaded node it may still run)
        in_order = ["deregister", "converge", "signal", "drain"][: len(phases)]
        assert phases and phases == in_order, terminating
        assert 'quiesce_operator_objects_managed{kind="Deployment"} 1.0' in metrics, metrics

        # Uninstall with Helm: the pre-delete hook's Job restores web before anything goes.
        shell.run(helm_uninstall, timeout=360)
        spec = json.loads(r.kubectl("get", "deployment/web", "-o", "json").stdout)
        assert "initContainers" not in spec["spec"]["template"]["spec"], spec["spec"]["template"]
        assert not [k for k in spec["metadata"]["annotations"] if k.startswith("state.quiesce")]
        assert shell.run(after_uninstall).splitlines()[0] == ""
    finally:
        if load is not None and load.proc.poll() is None:
            load.proc.kill()
        if lb is not None:
            lb.stop()
            r.load_balancers.remove(lb)
        r.kubectl("delete", "deployment/web", "--ignore-not-found", "--wait=false")
        chartkit.helm(
            "uninstall", chartkit.RELEASE, "--namespace", chartkit.NAMESPACE, "--no-hooks",
            kubeconfig=r.kubeconfig, check=False,
        )  # fmt: skip
        r.kubectl("delete", "namespace", chartkit.NAMESPACE, "--ignore-not-found", "--wait=false")
        r.kubectl("delete", "crd", "--ignore-not-found", "clusterkopfpeerings.kopf.dev",
                  "kopfpeerings.kopf.dev")  # fmt: skip
    with contextlib.suppress(AssertionError):
        chartkit.wait_for(
            "web's pods, quiesce's namespace and the sidecar RoleBinding to go",
            lambda: chartkit.snapshot(r) == before,
            timeout=180,
        )
    assert chartkit.snapshot(r) == before
