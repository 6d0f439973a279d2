"""Issue 16 end to end: container restarts under load drop nothing.

One pod of an injected Deployment (two replicas of one Consul service) is restarted
twice by its liveness probe while the load goes through HAProxy on Consul DNS, as in
test_scenarios.py. The app never deregisters itself (``--keep-registration``), so
only the sidecar takes it out of rotation: Consul maintenance on, convergence on what
it observes, then the app's signal; once the app is back, maintenance off.

Outcomes, not clocks: no request failed over the whole run; between the restarts the
pod is back in Consul (passing, no maintenance check) and HAProxy sends it requests
again; the second restart ran a sequence of its own; each time the app exited on its
stop signal after a preStop hook that returned.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from e2e import outcomes
from quiesce.rig import haproxy, loadgen, process, rig, rollout, scenarios

T = TypeVar("T")
PROFILE = haproxy.Profile(discovery_interval=5.0)
RATE = 30
REPLICAS = 2


def eventually(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy (a liveness bound, not a measure)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError:
            last = None
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}: {last!r}")


def restartable(flags: Path) -> Callable[..., dict[str, Any]]:
    """rollout.deployment, with an app that never deregisters and a liveness probe that
    fails while ``flags/<pod name>`` exists (so one pod is restarted, not all)."""
    original = rollout.deployment

    def deployment(**kwargs: Any) -> dict[str, Any]:
        manifest = original(**kwargs)
        (app,) = manifest["spec"]["template"]["spec"]["containers"]
        app["args"] = [*app["args"], "--keep-registration"]
        app["livenessProbe"] = {
            "exec": {"command": ["sh", "-c", f'test ! -e "{flags}/$POD_NAME"']},
            "periodSeconds": 1,
            "failureThreshold": 1,
            # a restarted app lives long enough for the test to remove the flag
            "initialDelaySeconds": 3,
        }
        return manifest

    return deployment


def served(lb: haproxy.HAProxy, addr: str) -> int | None:
    """Sessions HAProxy has sent to the server at ``addr``, or None when it is not active."""
    rows = csv.DictReader(io.StringIO(lb.command("show stat").lstrip("# ")))
    for row in rows:
        if row.get("pxname") == "be" and row.get("addr") == addr:
            if row.get("status", "").startswith(("MAINT", "DOWN")):
                return None
            return int(row.get("stot") or 0)
    return None


class Restarted:
    """The pod the test restarts: its status, restarts, Consul state, HAProxy slot."""

    def __init__(self, w: scenarios.Workload, pod: dict[str, Any], flags: Path) -> None:
        assert w.rig.consul is not None and w.lb is not None
        self.w, self.consul, self.lb = w, w.rig.consul, w.lb
        self.name: str = pod["metadata"]["name"]
        self.ip: str = pod["status"]["podIP"]
        self.addr = f"{self.ip}:{rollout.APP_PORT}"
        self.service_id = f"{w.service}-{self.name}"
        self.flag = flags / self.name

    def pod(self) -> dict[str, Any]:
        return next(p for p in self.w.pods() if p["metadata"]["name"] == self.name)

    def restarts(self) -> int:
        for cs in self.pod().get("status", {}).get("containerStatuses") or []:
            if cs["name"] == outcomes.APP:
                return int(cs["restartCount"])
        return 0

    def ready(self) -> bool:
        conds = self.pod().get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def in_consul(self) -> dict[str, Any]:
        passing = [e["Service"]["ID"] for e in self.consul.healthy_instances(self.w.service)]
        checks = self.consul.request("GET", "/v1/agent/checks")
        maintenance = [c for c in checks if c == f"_service_maintenance:{self.service_id}"]
        return {"passing": self.service_id in passing, "maintenance": maintenance}

    def serving_in_consul(self) -> bool:
        state = self.in_consul()
        return bool(state["passing"] and not state["maintenance"])

    def status(self) -> dict[str, Any]:
        return scenarios.sidecar_status(self.ip)

    def restart(self, sequence: int) -> dict[str, Any]:
        """Fail the liveness probe once; return /status once HAProxy serves the pod again."""
        before = self.restarts()
        self.flag.touch()
        try:
            eventually(
                lambda: self.status().get("sequence", 0) >= sequence,
                timeout=60,
                what=f"sequence {sequence} started",
            )
        finally:
            self.flag.unlink()
        eventually(lambda: self.restarts() > before, timeout=120, what="the app restarted")
        eventually(self.ready, timeout=60, what="the pod ready again")
        eventually(self.serving_in_consul, timeout=60, what="passing, no maintenance")
        # HAProxy has it back in a slot, then sends it requests again
        baseline = eventually(
            lambda: (n := served(self.lb, self.addr)) is not None and (n,),
            timeout=60,
            what="HAProxy's slot for the pod active",
        )[0]
        eventually(
            lambda: (served(self.lb, self.addr) or 0) > baseline,
            timeout=30,
            what="HAProxy serving the pod again",
        )
        return eventually(
            lambda: (s := self.status())["undid"] and s,
            timeout=30,
            what="the sequence recorded what it undid",
        )


def test_a_pod_restarted_twice_by_liveness_under_load_drops_nothing(
    rig_instance: rig.Rig,
    operator: process.ManagedProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(rollout, "deployment", restartable(tmp_path))
    with scenarios.Workload(rig_instance, "relive", PROFILE, groups=(("web", REPLICAS),)) as w:
        assert w.lb is not None
        pod = Restarted(w, w.live_pods()[0], tmp_path)
        assert pod.serving_in_consul(), pod.in_consul()
        out = rig_instance.workdir / f"load-{w.namespace}.jsonl"
        gen = loadgen.start(
            rig_instance.network.client.popen, w.lb.url, rate=RATE, duration=900, out=out
        )
        try:
            time.sleep(3)  # the load reaches both pods
            first = pod.restart(1)
            between = pod.in_consul()
            second = pod.restart(2)
            time.sleep(3)  # traffic on both again
        finally:
            results = gen.stop()
        summary = loadgen.summarise(results)
        facts = outcomes.stopped(rig_instance, w.namespace, [pod.name])[pod.name]
    print(json.dumps({"summary": summary.__dict__, "facts": facts, "first": first}, default=str))
    print(json.dumps(second, default=str))

    assert summary.sent >= 200, summary
    assert summary.failed == 0, [str(x) for x in results if x.failed][:20]

    assert first["sequence"] == 1
    assert first["classification"]["kind"] == "restart"
    assert first["phases"][0]["name"] == "maintenance"
    assert first["phases"][0]["deregistered"] == []
    assert between == {"passing": True, "maintenance": []}

    assert second["sequence"] == 2  # a sequence of its own, not the first one joined
    assert second["classification"]["kind"] == "restart"
    assert second["phases"][0]["name"] == "maintenance"
    assert [h["sequence"] for h in second["history"]] == [1]

    # each time: the app exited on its signal (not SIGKILL) after a hook that returned
    assert facts["app_exit_codes"] == [0, 0], facts
    assert facts["hook_failures"] == [], facts
    reasons = facts["convergence"]
    assert isinstance(reasons, list) and len(reasons) == 2, facts
    assert not set(reasons) & set(outcomes.TIMED_OUT), facts
