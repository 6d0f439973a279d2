"""``quiesce uninject``: removing quiesce gives every workload its original template back."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import yaml
from operator_rig import Cluster, OperatorProcess, deployment, injected

from quiesce import annotations as keys


def test_uninject_restores_every_workload_byte_for_byte_and_keeps_the_users_annotation(
    cluster: Cluster, make_operator: Callable[..., OperatorProcess]
) -> None:
    ns = "un-1-restore"
    cluster.create_namespace(ns)
    try:
        op = make_operator("--namespace=un-*", name="operator-uninject")
        originals = {}
        for kind, name in (("Deployment", "web"), ("StatefulSet", "db"), ("DaemonSet", "agent")):
            manifest = deployment(ns, name, kind=kind, annotations={})
            cluster.apply(yaml.safe_dump(manifest))
            originals[kind] = cluster.get(kind, ns, name)["spec"]["template"]
            cluster.kubectl("annotate", "-n", ns, f"{kind.lower()}/{name}", f"{keys.INJECT}=true")
            injected(cluster, ns, name, kind)
        op.stop()  # as the chart's hook does first: a running operator would re-inject

        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "quiesce",
                "uninject",
                "-n",
                ns,
                f"--kubeconfig={cluster.rig.kubeconfig}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "restored 3 workload(s)" in result.stdout
        for kind, name in (("Deployment", "web"), ("StatefulSet", "db"), ("DaemonSet", "agent")):
            obj = cluster.get(kind, ns, name)
            assert json.dumps(obj["spec"]["template"]) == json.dumps(originals[kind]), kind
            annotations = obj["metadata"].get("annotations") or {}
            assert not [k for k in annotations if k.startswith(keys.STATE_PREFIX)], kind
            assert annotations.get(keys.INJECT) == "true"  # the user's, left alone

        # Idempotent: a pass over every namespace finds nothing left here (leftovers
        # of other tests on the shared rig may still be restored).
        again = subprocess.run(
            [
                sys.executable,
                "-m",
                "quiesce",
                "uninject",
                "--all",
                f"--kubeconfig={cluster.rig.kubeconfig}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        assert f"/{ns}/" not in again.stdout
    finally:
        cluster.delete_namespace(ns)


def test_a_malformed_stop_operator_argument_names_the_expected_form(cluster: Cluster) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "quiesce",
            "uninject",
            "--all",
            "--stop-operator",
            "quiesce",
            f"--kubeconfig={cluster.rig.kubeconfig}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--stop-operator 'quiesce': expected NAMESPACE/NAME" in result.stderr
