"""No rollout loop beside a GitOps controller, in template mode and in webhook mode.

The controller is played by ``kubectl apply --server-side --field-manager=argocd
--force-conflicts`` of the unchanged manifest, repeated while the operator runs:
Argo CD (with ServerSideApply) and Flux's kustomize-controller both apply
server-side and force conflicts. ReplicaSets and the Deployment's generation are
counted: a loop shows as new generations (ReplicaSets are reused when a template
comes back, so their count alone would understate a loop).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from operator_rig import decode_plan, injected, owned_replicasets, template_spec, wait_for
from webhook_rig import Cluster, WebhookOperator, has_sidecar, prestop

from quiesce import annotations as keys
from quiesce.rig import errors

pytestmark = pytest.mark.rig
SYNCS = 10


def manifest(
    namespace: str,
    *,
    on_template: bool = False,
    grace: int | None = None,
    annotations: dict[str, str] | None = None,
) -> str:
    """The Deployment as Git has it: quiesce.dev/inject on the Deployment (template mode) or
    on its pod template (webhook mode)."""
    wanted = {keys.INJECT: "true", **(annotations or {})}
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "app",
                "image": "registry.example/web:1",
                "ports": [{"name": "http", "containerPort": 8080}],
            }
        ]
    }
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec},
        },
    }
    if on_template:
        obj["spec"]["template"]["metadata"]["annotations"] = wanted  # type: ignore[index]
    else:
        obj["metadata"]["annotations"] = wanted
    return yaml.safe_dump(obj)


def sync(cluster: Cluster, text: str, *, force: bool = True) -> str:
    args = ["apply", "--server-side", "--field-manager=argocd", "-f", "-"]
    if force:
        args.insert(2, "--force-conflicts")
    return cluster.kubectl(*args, input=text)


def generation(cluster: Cluster, namespace: str) -> int:
    return int(cluster.get("Deployment", namespace, "web")["metadata"]["generation"])


def settled(cluster: Cluster, namespace: str, seconds: float = 3.0) -> int:
    """The generation once it stopped changing for ``seconds``."""
    last, since = generation(cluster, namespace), time.monotonic()
    deadline = since + 60
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, "the Deployment never settled"
        time.sleep(0.5)
        now = generation(cluster, namespace)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_template_mode_repeated_syncs_roll_nothing(
    cluster: Cluster, gitops_operator: WebhookOperator, template_namespace: str
) -> None:
    ns = template_namespace
    text = manifest(ns)
    sync(cluster, text)
    injected(cluster, ns)
    before = settled(cluster, ns)
    replicasets = len(owned_replicasets(cluster, ns))
    assert replicasets <= 2  # the original, then the injected template
    for _ in range(SYNCS):
        sync(cluster, text)
        time.sleep(0.3)
    assert settled(cluster, ns) == before
    assert len(owned_replicasets(cluster, ns)) == replicasets
    live = cluster.get("Deployment", ns, "web")
    assert "initContainers" in template_spec(live)
    managers = {m["manager"] for m in live["metadata"]["managedFields"]}
    assert {"argocd", "quiesce"} <= managers


def test_webhook_mode_repeated_syncs_roll_nothing_and_never_touch_the_deployment(
    cluster: Cluster, gitops_operator: WebhookOperator, webhook_namespace: str
) -> None:
    ns = webhook_namespace
    text = manifest(ns, on_template=True)
    sync(cluster, text)
    pod = wait_for(lambda: (cluster.pods(ns) or [None])[0], what="the pod")
    assert has_sidecar(pod)
    for _ in range(SYNCS):
        sync(cluster, text)
        time.sleep(0.3)
    assert settled(cluster, ns) == 1
    assert len(owned_replicasets(cluster, ns)) == 1
    live = cluster.get("Deployment", ns, "web")
    assert "quiesce" not in {m["manager"] for m in live["metadata"]["managedFields"]}
    assert "initContainers" not in template_spec(live)
    assert len(cluster.pods(ns)) == 1


def test_template_mode_a_smaller_grace_in_git_conflicts_or_wins_once_without_a_loop(
    cluster: Cluster, gitops_operator: WebhookOperator, template_namespace: str
) -> None:
    """The contested field, as docs/gitops.md says: Git's 10 s against the plan's grace."""
    ns = template_namespace
    text = manifest(ns, grace=10)
    sync(cluster, text)
    obj = injected(cluster, ns)
    plan_grace = decode_plan(template_spec(obj))["grace_period_seconds"]
    assert template_spec(obj)["terminationGracePeriodSeconds"] == plan_grace > 10
    before = settled(cluster, ns)

    # kubectl's default (no force): refused, naming quiesce; nothing changes.
    with pytest.raises(errors.RigError) as refused:
        sync(cluster, text, force=False)
    assert "conflict" in str(refused.value).lower() and "quiesce" in str(refused.value)
    assert settled(cluster, ns) == before

    # Argo CD / Flux force: Git's value wins, once. quiesce does not raise it again (its plan
    # and the workload's own template are unchanged), so there is no loop; the sidecar then
    # works within the pod's shorter deletion grace.
    for _ in range(SYNCS):
        sync(cluster, text)
        time.sleep(0.3)
    assert settled(cluster, ns) == before + 1
    live = cluster.get("Deployment", ns, "web")
    assert template_spec(live)["terminationGracePeriodSeconds"] == 10
    assert "initContainers" in template_spec(live)  # the sidecar and hooks stay
    assert prestop({"spec": template_spec(live)}) is not None
    owners = [
        m["manager"]
        for m in live["metadata"]["managedFields"]
        if "f:terminationGracePeriodSeconds"
        in (m.get("fieldsV1", {}).get("f:spec", {}).get("f:template", {}).get("f:spec", {}))
    ]
    assert owners == ["argocd"]


@pytest.mark.parametrize(
    ("grace", "annotations"),
    [(60, {}), (20, {keys.GRACE_PERIOD: "20s"})],
    ids=["git-grace-larger-than-the-plan", "git-grace-equal-to-the-annotation"],
)
def test_template_mode_a_grace_in_git_that_agrees_with_the_plan_rolls_nothing(
    cluster: Cluster,
    gitops_operator: WebhookOperator,
    template_namespace: str,
    grace: int,
    annotations: dict[str, str],
) -> None:
    ns = template_namespace
    text = manifest(ns, grace=grace, annotations=annotations)
    sync(cluster, text)
    obj = injected(cluster, ns)
    assert template_spec(obj)["terminationGracePeriodSeconds"] == grace
    before = settled(cluster, ns)
    replicasets = len(owned_replicasets(cluster, ns))
    for _ in range(SYNCS):
        sync(cluster, text)
        sync(cluster, text, force=False)  # no conflict either: both managers agree
        time.sleep(0.2)
    assert settled(cluster, ns) == before
    assert len(owned_replicasets(cluster, ns)) == replicasets


def test_webhook_mode_a_smaller_grace_in_git_is_raised_in_the_pod_only(
    cluster: Cluster, gitops_operator: WebhookOperator, webhook_namespace: str
) -> None:
    ns = webhook_namespace
    text = manifest(ns, on_template=True, grace=10)
    sync(cluster, text)
    pod = wait_for(lambda: (cluster.pods(ns) or [None])[0], what="the pod")
    assert (
        pod["spec"]["terminationGracePeriodSeconds"]
        == decode_plan(pod["spec"])["grace_period_seconds"]
        > 10
    )
    assert prestop(pod) is not None
    for _ in range(SYNCS):
        sync(cluster, text, force=False)
        time.sleep(0.2)
    assert settled(cluster, ns) == 1
    assert len(owned_replicasets(cluster, ns)) == 1
    live = cluster.get("Deployment", ns, "web")
    assert template_spec(live)["terminationGracePeriodSeconds"] == 10
