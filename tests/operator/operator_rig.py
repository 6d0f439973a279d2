"""Helpers of the operator tests: polling, the operator subprocess, the cluster as tests see it."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from quiesce import annotations as keys
from quiesce.rig import kubeapi, rig

T = TypeVar("T")
_numbers = itertools.count(1)


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> T:
    """Poll until ``probe`` returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what or probe}")
        time.sleep(interval)


class OperatorProcess:
    """One ``quiesce operator`` subprocess; ``restart`` keeps its arguments."""

    def __init__(self, kubeconfig: Path, logdir: Path, args: list[str], name: str) -> None:
        self.kubeconfig = kubeconfig
        self.args = args
        self.log_path = logdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "quiesce",
            "operator",
            f"--kubeconfig={self.kubeconfig}",
            "--log-format=json",
            *self.args,
        ]
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        wait_for(
            lambda: "Initial authentication has finished" in self.log(),
            timeout=30,
            what=f"the operator to start ({self.log_path})",
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """The rig's API server, as the tests read and change it."""

    def __init__(self, r: rig.Rig) -> None:
        assert r.control_plane is not None
        self.rig = r
        self.api: kubeapi.ApiClient = r.control_plane.api()

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.rig.kubectl(*args, input=input).stdout

    def apply(self, manifest: str) -> str:
        return self.kubectl("apply", "-f", "-", input=manifest)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        plural = {"Deployment": "deployments", "StatefulSet": "statefulsets"}.get(
            kind, kind.lower() + "s"
        )
        result: dict[str, Any] = self.api.get(
            f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}"
        )
        return result

    def replicasets(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.get(
            f"/apis/apps/v1/namespaces/{namespace}/replicasets"
        )["items"]
        return items

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
        return items

    def events(self, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.get(f"/api/v1/namespaces/{namespace}/events")[
            "items"
        ]
        return [e for e in items if name is None or e["involvedObject"].get("name") == name]

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.api.create(
            "/api/v1/namespaces",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": labels or {}},
            },
        )

    def delete_namespace(self, name: str) -> None:
        with contextlib.suppress(kubeapi.ApiError):
            self.api.request("DELETE", f"/api/v1/namespaces/{name}")


def decode_plan(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """The QUIESCE_PLAN the sidecar of ``pod_spec`` gets."""
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or ():
            if container["name"] == "quiesce-sidecar":
                for env in container["env"]:
                    if env["name"] == "QUIESCE_PLAN":
                        plan: dict[str, Any] = json.loads(env["value"].replace("$$", "$"))
                        return plan
    raise AssertionError("no quiesce sidecar in the pod spec")


def make_namespace(
    cluster: Cluster, op: OperatorProcess, request: pytest.FixtureRequest, prefix: str
) -> Iterator[str]:
    short = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:30]
    name = f"{prefix}-{next(_numbers)}-{short}".strip("-")
    cluster.create_namespace(name)
    yield name
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(f"\n--- operator log ({op.log_path}) ---\n{op.log()[-6000:]}")
    cluster.delete_namespace(name)


# --- workloads as the tests write and read them ------------------------------------


def deployment(
    namespace: str,
    name: str = "web",
    *,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    kind: str = "Deployment",
) -> dict[str, Any]:
    pod_spec = spec or {
        "containers": [
            {
                "name": "app",
                "image": "registry.example/web:1",
                "ports": [{"name": "http", "containerPort": 8080}],
            }
        ]
    }
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {keys.INJECT: "true"} if annotations is None else annotations,
        },
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }
    if kind == "StatefulSet":
        obj["spec"]["serviceName"] = name
    if kind != "DaemonSet":
        obj["spec"]["replicas"] = 1
    return obj


def injected(cluster: Cluster, namespace: str, name: str = "web", kind: str = "Deployment") -> Any:
    def probe() -> dict[str, Any] | None:
        obj = cluster.get(kind, namespace, name)
        status = (obj["metadata"].get("annotations") or {}).get(keys.STATE_STATUS, "")
        return obj if status.startswith("ok: ") else None

    return wait_for(probe, timeout=30, what=f"{kind} {namespace}/{name} to be injected")


def template_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def owned_replicasets(cluster: Cluster, namespace: str, name: str = "web") -> list[dict[str, Any]]:
    return [
        rs
        for rs in cluster.replicasets(namespace)
        if any(o["name"] == name for o in rs["metadata"].get("ownerReferences") or ())
    ]


def managers(obj: dict[str, Any]) -> set[str]:
    return {m["manager"] for m in obj["metadata"].get("managedFields") or ()}
