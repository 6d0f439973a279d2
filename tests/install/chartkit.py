"""The real helm and kubectl for the install tests, and helpers over their output."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from quiesce.rig import binaries, rig

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "quiesce"
MANIFESTS = REPO / "manifests"
GOLDEN = Path(__file__).resolve().parent / "golden"
VALUES = Path(__file__).resolve().parent / "values"
RELEASE = "quiesce"
NAMESPACE = "quiesce-system"
KUBE_VERSION = "1.37.2"
#: Set to 1 to rewrite the golden files from the current chart.
UPDATE_GOLDEN = os.environ.get("QUIESCE_UPDATE_GOLDEN") == "1"


def helm(
    *args: str, kubeconfig: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = [str(binaries.require("helm")), *args]
    if kubeconfig is not None:
        argv.append(f"--kubeconfig={kubeconfig}")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    return result


def template(*args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    """``helm template`` of the chart; ``args`` are extra flags (``--set``, ``-f``)."""
    return helm(
        "template", release, str(CHART), "--namespace", namespace,
        "--kube-version", KUBE_VERSION, *args,
    ).stdout  # fmt: skip


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs: Iterable[Mapping[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return dict(found[0])


def rules(role: Mapping[str, Any]) -> set[tuple[str, str, str, str]]:
    """A Role's rules as (group, resource, verb, resourceName) tuples, order-free."""
    out = set()
    for rule in role["rules"]:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    for name in rule.get("resourceNames") or ["*"]:
                        out.add((group, resource, verb, name))
    return out


def container(docs: Sequence[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    obj = find(docs, kind, name)
    (only,) = obj["spec"]["template"]["spec"]["containers"]
    return dict(only)


#: Cluster-scoped objects with fixed names: one quiesce per cluster.
CLUSTER_OBJECTS = (
    "customresourcedefinition/clusterkopfpeerings.kopf.dev",
    "customresourcedefinition/kopfpeerings.kopf.dev",
    "clusterrole/quiesce-sidecar",
    "clusterrole/quiesce-operator",
    "clusterrolebinding/quiesce-operator",
)
NOT_OBJECTS = {"events", "events.events.k8s.io"}


def snapshot(r: rig.Rig) -> set[str]:
    """Every object of every listable kind, as 'kind namespace/name'."""
    kinds = [
        k for k in r.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
        if k not in NOT_OBJECTS
    ]  # fmt: skip
    line = '{.apiVersion} {.kind} {.metadata.namespace}/{.metadata.name}{"\\n"}'
    out = r.kubectl(
        "get", ",".join(kinds), "--all-namespaces", "-o",
        "jsonpath={range .items[*]}" + line + "{end}", timeout=120,
    ).stdout  # fmt: skip
    return {line for line in out.splitlines() if line.strip()}


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def namespace_gone(r: rig.Rig, name: str) -> bool:
    result = r.kubectl("get", "namespace", name, "--ignore-not-found", "-o", "name")
    return not result.stdout.strip()
