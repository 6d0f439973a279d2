"""`quiesce lint --cluster`: read-only linting of a live cluster's workloads."""

from __future__ import annotations

import json
import pathlib
import socket
import textwrap
import time

import pytest

from quiesce import cli
from quiesce.lint import cluster
from quiesce.rig import rig


def test_list_items_get_their_kind_and_controller_owned_objects_are_skipped() -> None:
    items = [
        {
            "metadata": {
                "name": "web-abc",
                "ownerReferences": [{"kind": "Deployment", "controller": True}],
            }
        },
        {
            "metadata": {
                "name": "rollout-rs",
                "ownerReferences": [{"kind": "Rollout", "controller": True}],
            }
        },
        {"metadata": {"name": "adopted", "ownerReferences": [{"kind": "Deployment"}]}},
        {"metadata": {"name": "bare"}},
        "not an object",
    ]
    objs = list(cluster.objects_from_list("ReplicaSet", items))
    # Owned by a listed controller: the Deployment is linted instead. A Rollout is not
    # listed, so its ReplicaSet is the object that carries the pod template.
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ReplicaSet", "rollout-rs"),
        ("ReplicaSet", "adopted"),
        ("ReplicaSet", "bare"),
    ]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_cluster_is_bad_input_and_files_are_still_linted(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: v1
            kind: Config
            clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{closed_port()}",
                         insecure-skip-tls-verify: true}}}}]
            users: [{{name: u, user: {{token: t}}}}]
            contexts: [{{name: gone, context: {{cluster: c, user: u}}}}]
            current-context: gone
            """
        )
    )
    fixture = pathlib.Path(__file__).parent / "fixtures" / "manifests" / "ql008-fires-zero.yaml"
    code = cli.main(["lint", str(fixture), "--kubeconfig", str(kubeconfig), "-o", "json"])
    out, _ = capsys.readouterr()
    assert code == 2
    document = json.loads(out)
    assert [f["rule"] for f in document["findings"]] == ["QL008"]
    [error] = document["errors"]  # once, not once per resource
    assert error["file"] == "cluster"
    assert error["message"].startswith("cannot reach the API server: ")
    assert "refused" in error["message"].lower()


def test_unknown_context_is_bad_input(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    code = cli.main(["lint", "--kubeconfig", str(kubeconfig), "--context", "nope"])
    out, _ = capsys.readouterr()
    assert code == 2
    assert "cluster:nope: cannot load kubeconfig" in out


HAZARDS = """\
apiVersion: v1
kind: Namespace
metadata: {name: lint-live}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: lint-live}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: quiesce/testapp
          command: [sh, -c, "python -m app"]
          ports: [{containerPort: 8080}]
"""


@pytest.mark.rig
def test_live_cluster_workloads_are_linted_once_each(
    rig_instance: rig.Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    rig_instance.kubectl("apply", "-f", "-", input=HAZARDS)
    # Let the deployment controller create the ReplicaSet: it must not be reported twice.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = rig_instance.kubectl("get", "rs", "-n", "lint-live", "-o", "name").stdout
        if out.strip():
            break
        time.sleep(0.5)
    code = cli.main(
        ["lint", "--kubeconfig", str(rig_instance.kubeconfig), "-n", "lint-live", "-o", "json"]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 1, document["errors"]
    assert sorted((f["kind"], f["name"], f["rule"]) for f in document["findings"]) == [
        ("Deployment", "web", "QL001"),
        ("Deployment", "web", "QL008"),
    ]
