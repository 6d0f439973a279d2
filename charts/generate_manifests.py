#!/usr/bin/env python3
"""Render the Helm chart into the plain manifests of ``kubectl apply -f manifests/``.

One source of truth: ``manifests/quiesce.yaml`` is ``helm template`` of
``charts/quiesce`` (the real helm, the rig's build), with the values a plain
install needs, minus Helm's own bookkeeping. ``--check`` exits 1 when the file
on disk differs (CI runs it through tests/install/test_manifests.py).

Usage::

    .venv/bin/python charts/generate_manifests.py          # rewrite manifests/quiesce.yaml
    .venv/bin/python charts/generate_manifests.py --check  # fail if it is stale
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "quiesce"
MANIFESTS = REPO / "manifests"
#: The CRDs get a file of their own, applied first: kubectl maps every object's kind
#: before it creates any, so the ClusterKopfPeering in quiesce.yaml needs its CRD to be
#: established already ("no matches for kind ... ensure CRDs are installed first").
CRDS_FILE = MANIFESTS / "quiesce-crds.yaml"
MAIN_FILE = MANIFESTS / "quiesce.yaml"
RELEASE = "quiesce"
NAMESPACE = "quiesce-system"
#: Rendering does not depend on it (no template reads .Capabilities); helm refuses to
#: render below the chart's kubeVersion, and its built-in default is older.
KUBE_VERSION = "1.37.2"
#: A plain install creates its Namespace; the pre-delete hook has no meaning without Helm
#: (`quiesce uninject --all` before `kubectl delete -f manifests/` does its job).
PLAIN_VALUES = ("createNamespace=true", "uninstall.restoreTemplates=false")
HEADER = """\
# quiesce: {what}
# GENERATED from charts/quiesce by charts/generate_manifests.py: do not edit by hand.
# Install (the CRDs first: kubectl must know their kinds before it reads quiesce.yaml):
#   kubectl apply -f manifests/quiesce-crds.yaml
#   kubectl wait --for=condition=Established crd/clusterkopfpeerings.kopf.dev \\
#     crd/kopfpeerings.kopf.dev
#   kubectl apply -f manifests/
"""
#: Helm's bookkeeping, meaningless for kubectl: the chart label, managed-by Helm, hooks.
_DROP = re.compile(
    r"^\s+(helm\.sh/chart: .*|app\.kubernetes\.io/managed-by: Helm|helm\.sh/hook[-a-z]*: .*)$"
)


def helm_binary() -> Path:
    from quiesce.rig import binaries

    return binaries.require("helm")


def render(helm: Path | None = None, *, extra: Sequence[str] = ()) -> dict[Path, str]:
    """The manifest files: ``helm template`` with the plain-install values, Helm's
    bookkeeping removed, the CRDs apart."""
    argv = [
        str(helm or helm_binary()),
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "--include-crds",
    ]
    for value in PLAIN_VALUES:
        argv += ["--set", value]
    argv += list(extra)
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"helm template failed:\n{result.stderr}")
    docs = [d for d in _strip_helm(result.stdout).split("\n---\n") if d.strip()]
    crds = [d for d in docs if "\nkind: CustomResourceDefinition\n" in f"\n{d}\n"]
    rest = [d for d in docs if d not in crds]
    return {
        CRDS_FILE: _join("kopf's peering CustomResourceDefinitions (kopf.dev/v1)", crds),
        MAIN_FILE: _join(
            f"namespace {NAMESPACE}: the operator, its RBAC, kopf peering, the sidecar's "
            "ClusterRole\n# Image ghcr.io/quiesce-dev/quiesce:<appVersion> (operator and sidecar).",
            rest,
        ),
    }


def _join(what: str, docs: list[str]) -> str:
    return (
        HEADER.format(what=what)
        + "---\n"
        + "\n---\n".join(d.strip("\n").removeprefix("---").strip("\n") for d in docs)
        + "\n"
    )


def _strip_helm(text: str) -> str:
    lines = [line for line in text.splitlines() if not _DROP.match(line)]
    out: list[str] = []
    for i, line in enumerate(lines):
        # An "annotations:" whose only entries were hooks is dropped with them.
        if line.strip() == "annotations:":
            indent = len(line) - len(line.lstrip())
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if len(following) - len(following.lstrip()) <= indent:
                continue
        out.append(line)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if manifests are stale")
    args = parser.parse_args(argv)
    stale = 0
    for path, text in render().items():
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        if args.check:
            print(
                f"{path.relative_to(REPO)} is stale: run "
                "`.venv/bin/python charts/generate_manifests.py`",
                file=sys.stderr,
            )
            stale = 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
