"""The real helm and kubectl for the install tests, and helpers over their output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from quiesce.rig import binaries

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
