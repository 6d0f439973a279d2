"""The chart's operator, running: installed with Helm on the rig with its node agent.

The node agent runs the chart's pods as local processes (the image
ghcr.io/quiesce-dev/quiesce is this checkout's ``quiesce``), in-cluster: their
service-account token, the ConfigMap, the downward API and kopf's liveness
probes are the chart's own. So this checks what rendering cannot: the replicas
elect one leader at distinct priorities from the first second, the chart's RBAC
is enough to inject a workload and bind its sidecar, and uninstalling leaves
nothing behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from install import chartkit
from quiesce.rig import rig

pytestmark = pytest.mark.rig
WORKLOADS = "quiesce-chart-demo"


def operator_log(r: rig.Rig, pod: str) -> str:
    """What the pod's operator container printed (the node agent's log file of it)."""
    pods = r.workdir / "node-agent" / "pods"
    files = sorted(pods.glob(f"{chartkit.NAMESPACE}_{pod}_*/operator.log"), key=_mtime)
    return files[-1].read_text() if files else ""


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def test_chart_operator_elects_one_leader_and_injects(running_cluster: rig.Rig) -> None:
    r = running_cluster
    before = chartkit.snapshot(r)
    chartkit.helm(
        "install", chartkit.RELEASE, str(chartkit.CHART), "--namespace", chartkit.NAMESPACE,
        "--create-namespace", "--set", "uninstall.restoreTemplates=false",
        kubeconfig=r.kubeconfig,
    )  # fmt: skip
    try:
        r.kubectl(
            "-n", chartkit.NAMESPACE, "wait", "--for=condition=Ready", "pod",
            "quiesce-operator-0", "quiesce-operator-1", "--timeout=120s", timeout=150,
        )  # fmt: skip

        # Both replicas are in the peering object, at their ordinals' priorities.
        def peers() -> dict[str, int]:
            body = json.loads(r.kubectl("get", "clusterkopfpeering/quiesce", "-o", "json").stdout)
            return {k: v["priority"] for k, v in (body.get("status") or {}).items()}

        chartkit.wait_for("two peers", lambda: len(peers()) == 2, timeout=30)
        assert peers() == {"quiesce-operator-0": 0, "quiesce-operator-1": 1}

        # The lower one stands by for the higher one, the higher one works, and no one
        # ever met a same-priority peer. kopf starts every replica paused, logs
        # "Resuming" when it finds no higher peer and "Pausing" when one appears.
        def active(pod: str) -> bool:
            lines = [
                line for line in operator_log(r, pod).splitlines()
                if "Resuming operations" in line or "Pausing operations" in line
            ]  # fmt: skip
            return bool(lines) and "Resuming operations" in lines[-1]

        chartkit.wait_for(
            "replica 1 to lead and replica 0 to stand by",
            lambda: active("quiesce-operator-1") and not active("quiesce-operator-0"),
            timeout=30,
        )
        for pod in ("quiesce-operator-0", "quiesce-operator-1"):
            assert "Possibly conflicting operators" not in operator_log(r, pod), pod

        # The leader injects with the chart's RBAC and configuration.
        r.kubectl("create", "namespace", WORKLOADS)
        r.kubectl("-n", WORKLOADS, "create", "deployment", "web", "--image=quiesce-testapp",
                  "--replicas=0")  # fmt: skip
        r.kubectl("-n", WORKLOADS, "annotate", "deployment/web", "quiesce.dev/inject=true")

        def sidecar_image() -> str:
            return r.kubectl(
                "-n", WORKLOADS, "get", "deployment/web", "-o",
                "jsonpath={.spec.template.spec.initContainers[0].image}",
            ).stdout  # fmt: skip

        chartkit.wait_for("the injection", lambda: bool(sidecar_image()), timeout=30)
        assert sidecar_image() == "ghcr.io/quiesce-dev/quiesce:0.1.0"
        binding = json.loads(
            r.kubectl("-n", WORKLOADS, "get", "rolebinding/quiesce-sidecar-default", "-o", "json")
            .stdout
        )  # fmt: skip
        assert binding["roleRef"]["name"] == "quiesce-sidecar"
    finally:
        chartkit.helm(
            "uninstall", chartkit.RELEASE, "--namespace", chartkit.NAMESPACE, "--wait",
            "--no-hooks", kubeconfig=r.kubeconfig, check=False,
        )  # fmt: skip
        for namespace in (WORKLOADS, chartkit.NAMESPACE):
            r.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
        # Helm never deletes crds/ (kopf's CRDs are shared by every kopf operator).
        r.kubectl("delete", "crd", "--ignore-not-found", "clusterkopfpeerings.kopf.dev",
                  "kopfpeerings.kopf.dev")  # fmt: skip
        for namespace in (WORKLOADS, chartkit.NAMESPACE):
            chartkit.wait_for(
                f"namespace {namespace} to go",
                lambda ns=namespace: chartkit.namespace_gone(r, ns),  # type: ignore[misc]
                timeout=120,
            )
    assert chartkit.snapshot(r) == before
