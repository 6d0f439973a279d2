"""The operator's MutatingWebhookConfiguration rights, judged by the rig's real RBAC.

quiesce writes its configuration with server-side apply: a PATCH to
``.../mutatingwebhookconfigurations/<name>``. What the real API server (1.37)
does with an account that holds only rules narrowed by ``resourceNames``:

- a PATCH that creates the object is authorized twice, as ``patch`` and as
  ``create``, both with the name from the URL: ``get`` and ``patch`` by name
  alone are refused ("cannot create resource"), and ``create`` narrowed by the
  same name is enough;
- a POST carries no name in its URL, so a ``create`` narrowed by name never
  matches it (the Kubernetes documentation's "create cannot be restricted by
  resourceName" is about POST): the account cannot create any other
  configuration, nor its own by POST;
- another product's configuration cannot be read, listed, patched or deleted.

So the chart's rule is ``get, create, patch`` with ``resourceNames: [<its
configuration>]``, and no verb needs to stay cluster-wide.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_rig import Cluster

from quiesce.operator import apply, metrics
from quiesce.rig import kubeapi

CONFIGS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
APPLY = "application/apply-patch+yaml"


def configuration(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "pods.quiesce.dev",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": "https://198.18.0.1:1/inject"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                # Matches no namespace: this configuration never judges a real pod.
                "namespaceSelector": {"matchLabels": {"quiesce.dev/rbac-probe": "never"}},
                "sideEffects": "None",
                "failurePolicy": "Ignore",
            }
        ],
    }


@pytest.fixture
def narrow(
    cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[apply.Client, str]]:
    """A client whose account holds the verbs (default: the chart's) on one name only."""
    verbs = getattr(request, "param", ["get", "create", "patch"])
    suffix = uuid.uuid4().hex[:6]
    own = f"quiesce-rbac-probe-{suffix}"
    account = f"rbac-probe-{suffix}"
    cluster.kubectl("create", "serviceaccount", account, "-n", "default")
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": account},
        "rules": [
            {
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["mutatingwebhookconfigurations"],
                "resourceNames": [own],
                "verbs": verbs,
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": account},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": account,
        },
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "default"}],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": [role, binding]}))  # fmt: skip
    kubeconfig = cluster.rig.service_account_kubeconfig("default", account, tmp_path / "kubeconfig")
    client = apply.Client.load(str(kubeconfig), metrics.Metrics())
    yield client, own
    client.close()
    for path in (f"{CONFIGS}/{own}", f"{CONFIGS}/{own}-other"):
        with contextlib.suppress(kubeapi.ApiError):
            cluster.api.request("DELETE", path)
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", account, "--ignore-not-found")
    cluster.kubectl("delete", "serviceaccount", account, "-n", "default", "--ignore-not-found")


def ssa(client: apply.Client, name: str) -> Any:
    return client.request(
        "PATCH",
        f"{CONFIGS}/{name}",
        body=configuration(name),
        content_type=APPLY,
        query=[("fieldManager", "quiesce"), ("force", "true")],
    )


def test_server_side_apply_creates_and_updates_the_own_configuration_with_verbs_by_name(
    cluster: Cluster, narrow: tuple[apply.Client, str]
) -> None:
    client, own = narrow
    with pytest.raises(apply.ApiError) as absent:
        client.request("GET", f"{CONFIGS}/{own}")
    assert absent.value.status == 404  # allowed to look, and it is not there yet
    created = ssa(client, own)  # a PATCH that creates: "patch" and "create" on `own`
    assert created["metadata"]["name"] == own
    assert cluster.api.get(f"{CONFIGS}/{own}")["metadata"]["uid"] == created["metadata"]["uid"]
    again = ssa(client, own)  # and a PATCH that updates
    assert again["metadata"]["uid"] == created["metadata"]["uid"]


@pytest.mark.parametrize("narrow", [["get", "patch"]], indirect=True)
def test_patch_by_name_without_create_cannot_create_the_configuration(
    narrow: tuple[apply.Client, str],
) -> None:
    client, own = narrow
    with pytest.raises(apply.ApiError) as denied:
        ssa(client, own)
    assert denied.value.status == 403
    assert 'cannot create resource "mutatingwebhookconfigurations"' in str(denied.value)


def test_the_narrow_account_cannot_create_read_or_rewrite_another_configuration(
    cluster: Cluster, narrow: tuple[apply.Client, str]
) -> None:
    client, own = narrow
    other = f"{own}-other"
    cluster.api.request("PATCH", f"{CONFIGS}/{other}?fieldManager=admin", configuration(other),
                        content_type=APPLY)  # fmt: skip
    for method, path, body, content_type in (
        ("GET", f"{CONFIGS}/{other}", None, None),
        ("GET", CONFIGS, None, None),
        ("PATCH", f"{CONFIGS}/{other}", configuration(other), APPLY),
        ("POST", CONFIGS, configuration(f"{own}-new"), "application/json"),
        ("POST", CONFIGS, configuration(own), "application/json"),  # by name only via PATCH
        ("DELETE", f"{CONFIGS}/{own}", None, None),
    ):
        with pytest.raises(apply.ApiError) as denied:
            client.request(
                method, path, body=body, content_type=content_type,
                query=[("fieldManager", "quiesce")] if method == "PATCH" else None,
            )  # fmt: skip
        assert denied.value.status == 403, (method, path)
