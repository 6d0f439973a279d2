"""Both install paths against the rig's real kube-apiserver: they install, and they leave
nothing behind.

The rig's node is cordoned (see conftest.py): the operator's pods stay Pending,
so these tests check what is installed and removed, not the running operator.

Every kind the API server can list is compared before and after, Events excepted
(the controllers' Events are history, not installed objects; they go with the
release's namespace).
"""

from __future__ import annotations

import json

import pytest

from install import chartkit
from install.chartkit import namespace_gone, snapshot, wait_for
from quiesce.rig import rig

pytestmark = pytest.mark.rig


def test_bad_values_fail_helm_install_with_the_value_named(cluster: rig.Rig) -> None:
    cases = {
        "operator.replicaCount=0": "at '/operator/replicaCount': minimum: got 0, want 1",
        "plan.convrge-max=30s": "at '/plan': additional properties 'convrge-max' not allowed",
        "plan.converge-max=thirty": "at '/plan/converge-max': 'thirty' does not match pattern",
        "sidecar.logFormat=xml": "at '/sidecar/logFormat': value must be one of 'json', 'text'",
        "consul.tokenSecret.name=acl": "missing property 'key'",
        "watchNamespaces={team-*}": "at '/watchNamespaces/0': 'team-*' does not match pattern",
        "sidecar.runAsUser=0": "at '/sidecar/runAsUser': minimum: got 0, want 1",
    }
    for value, message in cases.items():
        result = chartkit.helm(
            "install", "quiesce-bad", str(chartkit.CHART), "--namespace", "default",
            "--set", value, kubeconfig=cluster.kubeconfig, check=False,
        )  # fmt: skip
        assert result.returncode != 0, value
        assert "values don't meet the specifications of the schema" in result.stderr, value
        assert message in result.stderr, f"{value}: {result.stderr}"
    releases = chartkit.helm("list", "-A", "-q", kubeconfig=cluster.kubeconfig).stdout.split()
    assert "quiesce-bad" not in releases


def test_helm_install_and_uninstall_leave_nothing_behind(cluster: rig.Rig) -> None:
    namespace = chartkit.NAMESPACE
    before = snapshot(cluster)
    install = chartkit.helm(
        "install", chartkit.RELEASE, str(chartkit.CHART), "--namespace", namespace,
        "--create-namespace", "--set", "uninstall.restoreTemplates=false",
        kubeconfig=cluster.kubeconfig,
    )  # fmt: skip
    notes = install.stdout.split("NOTES:", 1)[1]
    assert "kubectl annotate deployment/my-app quiesce.dev/inject=true" in notes
    assert "run `quiesce uninject --all`" in notes

    installed = snapshot(cluster) - before
    kinds = {line.split()[1] for line in installed}
    assert {
        "StatefulSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
        "CustomResourceDefinition", "PodDisruptionBudget", "Service", "ClusterKopfPeering",
    } <= kinds, installed  # fmt: skip
    sts = json.loads(
        cluster.kubectl("-n", namespace, "get", "statefulset/quiesce-operator", "-o", "json").stdout
    )
    assert sts["spec"]["replicas"] == 2
    # The StatefulSet controller made both pods, each with its ordinal label: the source
    # of QUIESCE_PRIORITY.
    wait_for(
        "two operator pods",
        lambda: (
            len(cluster.kubectl("-n", namespace, "get", "pods", "-o", "name").stdout.split()) == 2
        ),
    )
    pods = json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-o", "json").stdout)
    indexes = sorted(p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] for p in pods["items"])
    assert indexes == ["0", "1"]

    chartkit.helm("uninstall", chartkit.RELEASE, "--namespace", namespace, "--wait",
                  kubeconfig=cluster.kubeconfig)  # fmt: skip

    def only_defaults_left() -> bool:
        left = {
            line for line in snapshot(cluster) - before
            if f" {namespace}/" in line or line.endswith(f" /{namespace}")
        }  # fmt: skip
        left = {line for line in left if "CustomResourceDefinition" not in line}
        return left == {
            f"v1 Namespace /{namespace}",
            f"v1 ServiceAccount {namespace}/default",
            f"v1 ConfigMap {namespace}/kube-root-ca.crt",
        }

    # What is left is only the namespace `helm install --create-namespace` made (Helm
    # never deletes it) with what Kubernetes puts in every namespace, and kopf's CRDs
    # (crds/: shared by every kopf operator, Helm never deletes them).
    wait_for("the release's objects to be deleted", only_defaults_left)
    assert {line for line in snapshot(cluster) - before if "CustomResourceDefinition" in line} == {
        "apiextensions.k8s.io/v1 CustomResourceDefinition /clusterkopfpeerings.kopf.dev",
        "apiextensions.k8s.io/v1 CustomResourceDefinition /kopfpeerings.kopf.dev",
    }
    cluster.kubectl("delete", "crd", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for("the namespace to go", lambda: namespace_gone(cluster, namespace))
    assert snapshot(cluster) == before


def test_kubectl_apply_and_delete_of_manifests_leave_nothing_behind(cluster: rig.Rig) -> None:
    before = snapshot(cluster)
    # The README's three commands: the CRDs, established, then everything.
    cluster.kubectl("apply", "-f", str(chartkit.MANIFESTS / "quiesce-crds.yaml"))
    cluster.kubectl(
        "wait", "--for=condition=Established",
        "crd/clusterkopfpeerings.kopf.dev", "crd/kopfpeerings.kopf.dev",
    )  # fmt: skip
    cluster.kubectl("apply", "-f", str(chartkit.MANIFESTS))
    installed = snapshot(cluster) - before
    assert "kopf.dev/v1 ClusterKopfPeering /quiesce" in installed
    assert f"apps/v1 StatefulSet {chartkit.NAMESPACE}/quiesce-operator" in installed
    assert f"v1 Namespace /{chartkit.NAMESPACE}" in installed

    # Applying again changes nothing (the README's upgrade path). kubectl reports the
    # PodDisruptionBudget "configured" every time (its selector's patch strategy is
    # "replace", so the patch is never empty), but no object's generation moves.
    def generations() -> dict[str, int]:
        items = json.loads(
            cluster.kubectl("-n", chartkit.NAMESPACE, "get", "statefulset,pdb,service,configmap",
                            "-o", "json").stdout
        )["items"]  # fmt: skip
        return {
            i["metadata"]["name"] + i["kind"]: i["metadata"].get("generation", 0) for i in items
        }

    first = generations()
    again = cluster.kubectl("apply", "-f", str(chartkit.MANIFESTS)).stdout
    assert "created" not in again, again
    assert generations() == first

    cluster.kubectl(
        "delete", "--ignore-not-found", "--wait", "-f", str(chartkit.MANIFESTS), timeout=180
    )
    wait_for("the namespace to go", lambda: namespace_gone(cluster, chartkit.NAMESPACE))
    assert snapshot(cluster) == before


def test_server_side_dry_run_accepts_every_manifest(cluster: rig.Rig) -> None:
    """`kubectl apply --dry-run=server`: the API server validates (schemas, defaults,
    admission) without storing. Namespaced objects need their namespace and custom
    objects their CRD for real, so those two are made first and removed after."""
    before = snapshot(cluster)
    cluster.kubectl("create", "namespace", chartkit.NAMESPACE)
    cluster.kubectl("apply", "-f", str(chartkit.MANIFESTS / "quiesce-crds.yaml"))
    try:
        cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=30s",
            "crd/clusterkopfpeerings.kopf.dev", "crd/kopfpeerings.kopf.dev",
        )  # fmt: skip
        for path in (
            chartkit.MANIFESTS,
            chartkit.MANIFESTS / "examples",
            chartkit.MANIFESTS / "rbac",
        ):
            if path.exists():
                result = cluster.kubectl("apply", "--dry-run=server", "-f", str(path))
                assert "(server dry run)" in result.stdout
        # The Helm rendering too, uninstall hook included (the defaults and a namespaced
        # configuration whose KopfPeerings go to existing namespaces).
        for extra in (
            (),
            ("--set", f"watchNamespaces={{default,{chartkit.NAMESPACE}}}"),
            ("--set", "webhook.enabled=true"),
            # The webhook's pods list bound per watched namespace (RoleBindings).
            ("--set", "webhook.enabled=true",
             "--set", f"watchNamespaces={{default,{chartkit.NAMESPACE}}}"),
        ):  # fmt: skip
            rendered = chartkit.template(*extra)
            result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
            assert "job.batch/quiesce-uninject created (server dry run)" in result.stdout
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "-f",
                        str(chartkit.MANIFESTS / "quiesce-crds.yaml"), "--wait")  # fmt: skip
        cluster.kubectl("delete", "namespace", chartkit.NAMESPACE, "--wait=false")
        wait_for("the namespace to go", lambda: namespace_gone(cluster, chartkit.NAMESPACE))
    assert snapshot(cluster) == before
