"""The README's install and uninstall sections, run as written against the rig's API server.

Every command of their ``sh`` blocks runs (``tests/install/readme.py``): ``kubectl``,
``helm`` and ``quiesce uninject``, with the rig's kubeconfig. ``docker`` cannot run
here (no container runtime). The nodes are cordoned (``cluster``), so the chart's
pods never start and ``helm uninstall`` runs with ``--no-hooks``; the hook itself
runs in ``test_readme_walkthrough.py``, where the node agent runs pods.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from install import chartkit, readme
from quiesce.rig import rig

pytestmark = pytest.mark.rig
NOT_RUN_HERE = ("docker",)
UNINJECT = ["quiesce", "uninject", "--all", "--stop-operator", "quiesce-system/quiesce-operator"]


def runnable(block: str) -> str:
    """The block without the lines of tools that cannot run here."""
    return "\n".join(line for line in block.splitlines() if not line.startswith(NOT_RUN_HERE))


def test_every_command_of_the_sections_is_one_this_test_runs_or_names() -> None:
    seen = [
        argv
        for block in readme.blocks("install") + readme.blocks("uninstall")
        for argv in readme.commands(block)
    ]
    assert {a[0] for a in seen} == {"kubectl", "helm", "docker", "quiesce"}
    assert UNINJECT in seen


def test_install_with_kubectl_then_uninstall_as_the_readme_says(
    cluster: rig.Rig, tmp_path: Path
) -> None:
    shell = readme.Shell(cluster, tmp_path / "bin")
    before = chartkit.snapshot(cluster)
    for block in readme.blocks("install", "With kubectl"):
        out = shell.run(block)
    assert "statefulset.apps/quiesce-operator" in out  # the `get` at the end
    kubectl_way = readme.blocks("uninstall")[1]
    assert readme.commands(kubectl_way)[0] == UNINJECT
    # The real command: the operator's StatefulSet is scaled to 0, nothing is injected.
    out = shell.run(kubectl_way)
    assert "restored 0 workload(s)" in out
    chartkit.wait_for(
        "the namespace to go", lambda: chartkit.namespace_gone(cluster, chartkit.NAMESPACE)
    )
    assert chartkit.snapshot(cluster) == before


def test_install_with_helm_upgrade_to_own_image_then_uninstall(
    cluster: rig.Rig, tmp_path: Path
) -> None:
    shell = readme.Shell(cluster, tmp_path / "bin")
    before = chartkit.snapshot(cluster)
    for block in readme.blocks("install", "With Helm"):
        shell.run(block)
    for block in readme.blocks("install", "Build and push"):
        shell.run(runnable(block))  # helm upgrade --install with the own registry's image
    image = cluster.kubectl(
        "-n", chartkit.NAMESPACE, "get", "statefulset/quiesce-operator", "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ).stdout  # fmt: skip
    assert image == "registry.example.com/quiesce:0.1.0"
    config = cluster.kubectl(
        "-n", chartkit.NAMESPACE, "get", "configmap/quiesce-config", "-o",
        "jsonpath={.data.config\\.yaml}",
    ).stdout  # fmt: skip
    assert "image: registry.example.com/quiesce:0.1.0" in config
    helm_way = readme.blocks("uninstall")[0]
    assert "helm uninstall quiesce --namespace quiesce-system\n" in helm_way
    # Cordoned nodes run no hook Job; the walk-through test runs the hook.
    shell.run(helm_way.replace("helm uninstall quiesce", "helm uninstall --no-hooks quiesce"))
    chartkit.wait_for(
        "the namespace to go", lambda: chartkit.namespace_gone(cluster, chartkit.NAMESPACE)
    )
    assert chartkit.snapshot(cluster) == before
