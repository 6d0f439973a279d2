"""Reading YAML: every object found, every error and finding on the right line."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from quiesce.lint import loader

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: x
"""


def test_multi_document_stream_keeps_each_objects_line() -> None:
    text = "---\n" + DEPLOYMENT + "---\n" + DEPLOYMENT.replace("web", "api")
    loaded = loader.load_text(text, "in.yaml")
    assert loaded.errors == []
    assert [(m.obj["metadata"]["name"], m.location.line) for m in loaded.manifests] == [
        ("web", 2),
        ("api", 13),
    ]


def test_field_lines_point_at_the_field() -> None:
    [manifest] = loader.load_text(DEPLOYMENT, "in.yaml").manifests
    path = ("spec", "template", "spec", "containers", 0, "image")
    assert manifest.line_of(path) == 10
    # A field that is not there points at its deepest existing parent.
    assert manifest.line_of(("spec", "template", "spec", "terminationGracePeriodSeconds")) == 7


def test_list_items_become_objects_with_their_own_lines() -> None:
    text = "kind: List\nitems:\n" + "".join(
        "  - " + DEPLOYMENT.replace("\n", "\n    ").rstrip() + "\n" for _ in range(2)
    )
    loaded = loader.load_text(text, "list.yaml")
    assert [m.location.line for m in loaded.manifests] == [3, 13]
    assert loaded.manifests[1].line_of(("metadata", "name")) == 16


def test_a_broken_document_does_not_hide_the_others() -> None:
    text = DEPLOYMENT + "---\nkind: [unclosed\n---\n" + DEPLOYMENT.replace("web", "api")
    loaded = loader.load_text(text, "in.yaml")
    assert [m.obj["metadata"]["name"] for m in loaded.manifests] == ["web", "api"]
    [error] = loaded.errors
    assert error.location.path == "in.yaml"
    assert error.location.line == 13
    assert "invalid YAML" in error.message
    # Lines after the salvaged chunk are still file lines.
    assert loaded.manifests[1].line_of(("metadata", "name")) == 17


@pytest.mark.parametrize(
    "text",
    [
        "just a string\n",
        "- a\n- b\n",
        "replicaCount: 3\nimage: {tag: latest}\n",  # a Helm values file
        "kind: 42\n",
    ],
)
def test_documents_that_are_not_kubernetes_objects_are_skipped_not_errors(text: str) -> None:
    loaded = loader.load_text(text, "values.yaml")
    assert (loaded.manifests, loaded.errors, loaded.skipped) == ([], [], 1)


def test_empty_documents_are_ignored() -> None:
    loaded = loader.load_text("---\n# only a comment\n---\n", "empty.yaml")
    assert (loaded.manifests, loaded.errors, loaded.skipped) == ([], [], 0)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("kind: Pod\nmetadata: {name: a\n", 3),
        ("kind: Pod\n  bad: indent\n", 2),
        ("kind: !custom Pod\n", 1),
        ("? [a]\n: b\n", 1),  # an unhashable key
    ],
)
def test_yaml_errors_carry_file_and_line(text: str, line: int) -> None:
    loaded = loader.load_text(text, "bad.yaml")
    [error] = loaded.errors
    assert error.location.path == "bad.yaml"
    assert error.location.line == line


def test_non_utf8_file_is_an_input_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: Pod\nmetadata: {name: caf\xe9}\n")
    [error] = loader.load_file(str(path)).errors
    assert error.location.line == 2
    assert "UTF-8" in error.message


def test_deep_nesting_is_an_input_error_not_a_crash() -> None:
    text = "kind: Pod\nspec: " + "[" * 5000 + "]" * 5000 + "\n"
    loaded = loader.load_text(text, "deep.yaml")
    assert loaded.manifests == []
    assert len(loaded.errors) == 1


def test_anchors_merge_keys_and_typed_scalars_read_as_the_safe_loader_reads_them() -> None:
    text = """\
kind: Deployment
metadata: &meta {name: web, labels: {app: web}}
defaults: &defaults {replicas: 3, paused: false, ratio: 0.5, empty: null, when: 2024-01-01}
spec:
  <<: *defaults
  template:
    metadata: *meta
"""
    [manifest] = loader.load_text(text, "in.yaml").manifests
    assert manifest.obj == yaml.safe_load(text)
    assert manifest.obj["spec"]["replicas"] == 3
