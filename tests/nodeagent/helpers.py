"""Helpers: manifests of pods whose containers log their signals, and polling."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from quiesce.rig import rig

SIGSCRIPT = Path(__file__).with_name("sigscript.py")
T = TypeVar("T")


def eventually(check: Callable[[], T | None], *, timeout: float = 30, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or check}: {last!r}")


def sig_container(
    name: str,
    log: Path,
    *,
    image: str = "busybox:1.36",
    port: int | None = None,
    exit_on: tuple[str, ...] = ("SIGTERM", "SIGQUIT", "SIGINT"),
    linger: float = 0.0,
    **extra: Any,
) -> dict[str, Any]:
    """A container running sigscript.py (``python`` maps to the venv's interpreter)."""
    args = [str(SIGSCRIPT), str(log), "--name", name, "--linger", str(linger)]
    args += ["--exit-on", *exit_on]
    if port:
        args += ["--port", str(port)]
    container: dict[str, Any] = {"name": name, "image": image, "command": ["python"], "args": args}
    container.update(extra)
    return container


class Cluster:
    """One test's namespace on the rig, driven with the real kubectl."""

    def __init__(self, rig_: rig.Rig, namespace: str, tmp: Path) -> None:
        self.rig = rig_
        self.namespace = namespace
        self.tmp = tmp

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.rig.kubectl("-n", self.namespace, *args, input=input, check=check).stdout

    def apply(self, *objects: dict[str, Any]) -> None:
        doc = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.kubectl("apply", "-f", "-", input=json.dumps(doc))

    def pod_manifest(
        self, name: str, containers: list[dict[str, Any]], **spec: Any
    ) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": containers, **spec},
        }

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        out = self.rig.kubectl("-n", self.namespace, "get", kind, name, "-o", "json", check=False)
        if out.returncode != 0:
            return None
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def pods(self, selector: str) -> list[dict[str, Any]]:
        out = self.kubectl("get", "pods", "-l", selector, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def wait_ready(self, name: str, timeout: float = 30) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            pod = self.get("pod", name)
            if pod is None:
                return None
            conds = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            return pod if conds.get("Ready") == "True" else None

        return eventually(ready, timeout=timeout, what=f"pod {name} Ready")

    def wait_gone(self, name: str, timeout: float = 60) -> float:
        eventually(lambda: self.get("pod", name) is None, timeout=timeout, what=f"{name} gone")
        return time.time()

    def delete(self, name: str, *extra: str) -> float:
        """Start a pod's graceful deletion; returns when the API server accepted it."""
        self.kubectl("delete", "pod", name, "--wait=false", *extra)
        return time.time()

    def events(self, name: str) -> list[dict[str, Any]]:
        out = self.kubectl(
            "get", "events", "-o", "json", "--field-selector", f"involvedObject.name={name}"
        )
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def endpoints(self, service: str) -> list[dict[str, Any]]:
        out = self.kubectl(
            "get", "endpointslices", "-l", f"kubernetes.io/service-name={service}", "-o", "json"
        )
        eps: list[dict[str, Any]] = []
        for s in json.loads(out)["items"]:
            eps += s.get("endpoints") or []
        return eps
