"""The README's install section, run as written against the rig's API server.

Every ``kubectl`` and ``helm`` line of its ``sh`` blocks runs, from the repository
root, with the rig's kubeconfig; what cannot run here is named: ``docker`` (no
container runtime) and ``quiesce uninject`` (not in this release yet: the Helm
uninstall then runs with ``--no-hooks``, as the README says for now).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from install import chartkit
from quiesce.rig import binaries, rig

pytestmark = pytest.mark.rig
NOT_RUN_HERE = ("docker", "quiesce")


def section() -> str:
    text = (chartkit.REPO / "README.md").read_text()
    start = text.index("<!-- section: install -->")
    return text[start : text.index("<!-- /section: install -->", start)]


def commands(heading: str, block: int | None = None) -> list[list[str]]:
    """The commands of the ``sh`` blocks under ``### heading`` (or only block ``block``)."""
    parts = re.split(r"^### ", section(), flags=re.M)
    (body,) = [p for p in parts if p.startswith(heading)]
    blocks = re.findall(r"```sh\n(.*?)```", body, flags=re.S)
    if block is not None:
        blocks = [blocks[block]]
    out = []
    for text in blocks:
        for line in text.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                out.append(argv)
    return out


def run(r: rig.Rig, argv: list[str]) -> str:
    tool = argv[0]
    assert tool in ("kubectl", "helm"), argv
    full = [str(binaries.require(tool)), f"--kubeconfig={r.kubeconfig}", *argv[1:]]
    result = subprocess.run(
        full, cwd=chartkit.REPO, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"`{shlex.join(argv)}` failed:\n{result.stderr}"
    return result.stdout


def runnable(argvs: list[list[str]]) -> list[list[str]]:
    return [a for a in argvs if a[0] not in NOT_RUN_HERE]


def test_every_command_of_the_section_is_one_this_test_runs_or_names() -> None:
    headings = ("With kubectl", "With Helm", "Build and push", "Uninstall")
    seen = [a for h in headings for a in commands(h)]
    assert {a[0] for a in seen} == {"kubectl", "helm", "docker", "quiesce"}
    assert [
        "quiesce",
        "uninject",
        "--all",
        "--stop-operator",
        "quiesce-system/quiesce-operator",
    ] in seen


def test_install_with_kubectl_then_uninstall_as_the_readme_says(cluster: rig.Rig) -> None:
    before = chartkit.snapshot(cluster)
    for argv in commands("With kubectl"):
        out = run(cluster, argv)
    assert "statefulset.apps/quiesce-operator" in out  # the `get` at the end
    uninstall = commands("Uninstall", block=1)
    assert uninstall[0] == [
        "quiesce",
        "uninject",
        "--all",
        "--stop-operator",
        "quiesce-system/quiesce-operator",
    ]
    # The real command: the operator's StatefulSet is scaled to 0, nothing is injected.
    result = subprocess.run(
        [sys.executable, "-m", *uninstall[0], f"--kubeconfig={cluster.kubeconfig}"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for argv in runnable(uninstall):
        run(cluster, argv)
    chartkit.wait_for(
        "the namespace to go", lambda: chartkit.namespace_gone(cluster, chartkit.NAMESPACE)
    )
    assert chartkit.snapshot(cluster) == before


def test_install_with_helm_upgrade_to_own_image_then_uninstall(cluster: rig.Rig) -> None:
    before = chartkit.snapshot(cluster)
    for argv in commands("With Helm"):
        run(cluster, argv)
    for argv in runnable(commands("Build and push")):
        run(cluster, argv)  # helm upgrade --install with the own registry's image
    image = run(
        cluster,
        ["kubectl", "-n", chartkit.NAMESPACE, "get", "statefulset/quiesce-operator", "-o",
         "jsonpath={.spec.template.spec.containers[0].image}"],
    )  # fmt: skip
    assert image == "registry.example.com/quiesce:0.1.0"
    config = run(
        cluster,
        ["kubectl", "-n", chartkit.NAMESPACE, "get", "configmap/quiesce-config", "-o",
         "jsonpath={.data.config\\.yaml}"],
    )  # fmt: skip
    assert "image: registry.example.com/quiesce:0.1.0" in config
    for argv in commands("Uninstall", block=0):
        if argv[:2] == ["helm", "uninstall"]:
            # The pre-delete hook's Job needs `quiesce uninject` (not yet) and a kubelet.
            argv = [*argv, "--no-hooks"]
        run(cluster, argv)
    chartkit.wait_for(
        "the namespace to go", lambda: chartkit.namespace_gone(cluster, chartkit.NAMESPACE)
    )
    assert chartkit.snapshot(cluster) == before
