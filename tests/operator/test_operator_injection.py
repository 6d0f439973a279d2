"""The operator against the rig's real API server and controller-manager: template mode.

Every workload is applied with the real kubectl, injected by the real
``quiesce operator`` subprocess, and rolled out by the real controller-manager.
Pods are created and bound but never run (the node agent is another issue),
so the tests check templates, ReplicaSets and pods as created.
"""

from __future__ import annotations

import copy
import json
import signal
import time
from typing import Any

import pytest
import yaml
from operator_rig import (
    Cluster,
    OperatorProcess,
    decode_plan,
    deployment,
    injected,
    managers,
    owned_replicasets,
    template_spec,
    wait_for,
)

from quiesce import annotations as keys
from quiesce import config
from quiesce.commands import plan as plan_command
from quiesce.operator import reconcile

pytestmark = pytest.mark.rig

SETTLE = 3.0  # seconds to wait for a write that must not happen


def test_an_applied_deployment_gets_exactly_what_quiesce_plan_predicts(
    cluster: Cluster, namespace: str
) -> None:
    manifest = deployment(namespace)
    prediction = plan_command.plan_object(manifest, config.Config(), native=True)
    assert prediction is not None and prediction["status"] == "ok"

    cluster.apply(yaml.safe_dump(manifest))
    live = injected(cluster, namespace)
    spec = template_spec(live)
    annotations = live["metadata"]["annotations"]
    assert annotations[keys.STATE_PLAN_HASH] == prediction["plan_hash"]

    token = reconcile.current_token(spec)
    assert token and token != plan_command.TOKEN_PLACEHOLDER
    expected = json.loads(
        json.dumps(prediction["_after"]).replace(plan_command.TOKEN_PLACEHOLDER, token)
    )
    # Everything predicted is there, in the same places; the API server only adds defaults.
    assert reconcile.contains(spec, expected), json.dumps(spec, indent=1)
    assert [c["name"] for c in spec["initContainers"]] == ["quiesce-sidecar"]
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == prediction["grace_period_seconds"] == 35
    hook = spec["containers"][0]["lifecycle"]["preStop"]["httpGet"]
    assert hook["path"] == "/prestop" and hook["port"] == 7979
    assert hook["httpHeaders"] == [{"name": "X-Quiesce-Token", "value": token}]
    assert decode_plan(spec) == prediction["plan"]

    # No kopf bookkeeping on the object; quiesce writes as its own field manager.
    assert not [k for k in annotations if "kopf" in k]
    assert "quiesce" in managers(live)
    assert not live["metadata"].get("finalizers")

    # The controller-manager rolls it out: a ReplicaSet and a pod with the sidecar.
    def rolled_out() -> list[dict[str, Any]] | None:
        pods = [
            p
            for p in cluster.pods(namespace)
            if any(c["name"] == "quiesce-sidecar" for c in p["spec"].get("initContainers", ()))
        ]
        return pods or None

    (pod, *_) = wait_for(rolled_out, timeout=30, what="a pod with the sidecar")
    assert pod["spec"]["terminationGracePeriodSeconds"] == 35
    assert pod["spec"]["containers"][0]["lifecycle"]["preStop"]["httpGet"]["port"] == 7979
    sets = owned_replicasets(cluster, namespace)
    with_sidecar = [rs for rs in sets if template_spec(rs).get("initContainers")]
    assert len(with_sidecar) == 1

    # The sidecar's service account can read EndpointSlices and its pod.
    binding = cluster.api.get(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/"
        "quiesce-sidecar-default"
    )
    assert binding["roleRef"]["name"] == "quiesce-sidecar"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "default", "namespace": namespace}
    ]
    # ... owned by the ClusterRole, so deleting it (uninstalling) collects the binding.
    role = cluster.api.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/quiesce-sidecar")
    (owner,) = binding["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "ClusterRole",
        "quiesce-sidecar",
        role["metadata"]["uid"],
    )
    reasons = [e["reason"] for e in cluster.events(namespace, "web")]
    assert reasons.count("Injected") == 1


def test_reapplying_unchanged_writes_nothing_and_rolls_nothing(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    text = yaml.safe_dump(deployment(namespace))
    cluster.apply(text)
    live = injected(cluster, namespace)
    time.sleep(SETTLE)  # let the controller's own status writes settle
    before = cluster.get("Deployment", namespace, "web")
    sets_before = len(owned_replicasets(cluster, namespace))

    assert "unchanged" in cluster.apply(text)
    time.sleep(SETTLE)
    after = cluster.get("Deployment", namespace, "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["metadata"]["managedFields"] == before["metadata"]["managedFields"]
    assert len(owned_replicasets(cluster, namespace)) == sets_before
    assert template_spec(after) == template_spec(live)


def test_changing_one_annotation_rolls_out_exactly_once(cluster: Cluster, namespace: str) -> None:
    manifest = deployment(namespace)
    cluster.apply(yaml.safe_dump(manifest))
    first = injected(cluster, namespace)
    wait_for(lambda: len(owned_replicasets(cluster, namespace)) == 2, what="the injected rollout")

    manifest["metadata"]["annotations"][keys.CONVERGE_MAX] = "30s"
    cluster.apply(yaml.safe_dump(manifest))

    def updated() -> dict[str, Any] | None:
        obj = cluster.get("Deployment", namespace, "web")
        hashes = obj["metadata"]["annotations"][keys.STATE_PLAN_HASH]
        return obj if hashes != first["metadata"]["annotations"][keys.STATE_PLAN_HASH] else None

    second = wait_for(updated, what="the new plan")
    assert template_spec(second)["terminationGracePeriodSeconds"] == 45
    assert reconcile.current_token(template_spec(second)) == reconcile.current_token(
        template_spec(first)
    ), "an update keeps the token, so running pods stay valid"
    time.sleep(SETTLE)
    assert len(owned_replicasets(cluster, namespace)) == 3, "exactly one new ReplicaSet"


def test_removing_inject_restores_the_template_byte_for_byte(
    cluster: Cluster, namespace: str
) -> None:
    manifest = deployment(namespace, annotations={})
    manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 12
    cluster.apply(yaml.safe_dump(manifest))
    original = cluster.get("Deployment", namespace, "web")
    original_rv = original["metadata"]["resourceVersion"]

    cluster.kubectl("annotate", "-n", namespace, "deployment/web", f"{keys.INJECT}=true")
    injected(cluster, namespace)
    cluster.kubectl("annotate", "-n", namespace, "deployment/web", f"{keys.INJECT}-")

    def restored() -> dict[str, Any] | None:
        obj = cluster.get("Deployment", namespace, "web")
        return None if keys.STATE_REPLACED in obj["metadata"].get("annotations", {}) else obj

    obj = wait_for(restored, what="the restore")
    assert obj["metadata"]["resourceVersion"] != original_rv
    assert json.dumps(obj["spec"]["template"]) == json.dumps(original["spec"]["template"])
    assert not [k for k in obj["metadata"]["annotations"] if "quiesce" in k]
    assert [e["reason"] for e in cluster.events(namespace, "web")].count("Restored") == 1
    # The controller goes back to the original ReplicaSet: the template hash matches again.
    time.sleep(SETTLE)
    assert len(owned_replicasets(cluster, namespace)) == 2


def test_an_existing_prestop_and_a_larger_grace_are_preserved(
    cluster: Cluster, namespace: str
) -> None:
    app = {
        "name": "app",
        "image": "registry.example/web:1",
        "ports": [{"name": "http", "containerPort": 8080}],
        "lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": 8080}}},
    }
    spec = {"containers": [app], "terminationGracePeriodSeconds": 300}
    manifest = deployment(namespace, spec=copy.deepcopy(spec))
    cluster.apply(yaml.safe_dump(manifest))
    live = injected(cluster, namespace)
    injected_spec = template_spec(live)
    assert injected_spec["terminationGracePeriodSeconds"] == 300, "the user's larger grace"
    plan = decode_plan(injected_spec)
    assert plan["grace_source"] == "template"
    assert plan["kept_hook"]["path"] == "/drain" and plan["kept_hook"]["port"] == 8080
    hook = injected_spec["containers"][0]["lifecycle"]["preStop"]
    assert set(hook) == {"httpGet"} and hook["httpGet"]["path"] == "/prestop"

    cluster.kubectl(
        "annotate", "-n", namespace, "deployment/web", f"{keys.INJECT}=false", "--overwrite"
    )

    def restored() -> dict[str, Any] | None:
        obj = cluster.get("Deployment", namespace, "web")
        return None if keys.STATE_REPLACED in obj["metadata"]["annotations"] else obj

    original_spec = template_spec(wait_for(restored, what="the restore"))
    defaulted = {"preStop": {"httpGet": {"path": "/drain", "port": 8080, "scheme": "HTTP"}}}
    assert original_spec["containers"][0]["lifecycle"] == defaulted
    assert original_spec["terminationGracePeriodSeconds"] == 300


def test_an_exec_sleep_hook_is_absorbed_into_the_convergence_floor(
    cluster: Cluster, namespace: str
) -> None:
    app = {
        "name": "app",
        "image": "registry.example/web:1",
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "8"]}}},
    }
    cluster.apply(yaml.safe_dump(deployment(namespace, spec={"containers": [app]})))
    spec = template_spec(injected(cluster, namespace))
    assert set(spec["containers"][0]["lifecycle"]["preStop"]) == {"httpGet"}
    plan = decode_plan(spec)
    assert plan["sleep_absorbed"] == 8.0 and plan["converge_min"] >= 8.0
    # kubectl would send the exec hook again on every apply: the user is told once.
    warnings = wait_for(
        lambda: [e for e in cluster.events(namespace, "web") if e["reason"] == "ManifestConflict"],
        what="the ManifestConflict Warning",
    )
    assert "containers[app].lifecycle.preStop" in warnings[0]["message"]


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_statefulsets_and_daemonsets_are_injected_and_restored(
    cluster: Cluster, namespace: str, kind: str
) -> None:
    manifest = deployment(namespace, "db", kind=kind)
    cluster.apply(yaml.safe_dump(manifest))
    live = injected(cluster, namespace, "db", kind)
    spec = template_spec(live)
    assert spec["initContainers"][0]["name"] == "quiesce-sidecar"
    assert spec["terminationGracePeriodSeconds"] == 35

    manifest["metadata"]["annotations"] = {}
    cluster.kubectl("annotate", "-n", namespace, f"{kind.lower()}/db", f"{keys.INJECT}-")

    def restored() -> dict[str, Any] | None:
        obj = cluster.get(kind, namespace, "db")
        return None if keys.STATE_REPLACED in obj["metadata"]["annotations"] else obj

    original = template_spec(wait_for(restored, what=f"the {kind} restored"))
    assert "initContainers" not in original
    assert "lifecycle" not in original["containers"][0]
    assert original["terminationGracePeriodSeconds"] == 30  # the API server's default, as before


def test_bad_annotations_warn_set_the_status_and_leave_the_template(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    manifest = deployment(
        namespace,
        annotations={
            keys.INJECT: "true",
            keys.CONVERGE_MAX: "soon",
            "quiesce.dev/convrge-min": "1s",
        },
    )
    cluster.apply(yaml.safe_dump(manifest))

    def reported() -> dict[str, Any] | None:
        obj = cluster.get("Deployment", namespace, "web")
        status = obj["metadata"]["annotations"].get(keys.STATE_STATUS, "")
        return obj if status.startswith("error: ") else None

    obj = wait_for(reported, what="the error status")
    status = obj["metadata"]["annotations"][keys.STATE_STATUS]
    assert "quiesce.dev/converge-max" in status and "quiesce.dev/convrge-min" in status
    assert "initContainers" not in template_spec(obj), "the template was not touched"
    assert len(owned_replicasets(cluster, namespace)) == 1
    warnings = wait_for(
        lambda: [e for e in cluster.events(namespace, "web") if e["type"] == "Warning"],
        what="the Warning Event",
    )
    (warning,) = warnings
    assert warning["reason"] == "InvalidAnnotations"
    assert "2 errors" in warning["message"]
    assert "quiesce.dev/converge-max" in warning["message"]
    assert "quiesce.dev/convrge-min" in warning["message"]
    assert operator.alive()

    # Nothing more is written while it stays wrong.
    time.sleep(SETTLE)
    again = cluster.get("Deployment", namespace, "web")
    state = {k: v for k, v in obj["metadata"]["annotations"].items() if k in keys.STATE_KEYS}
    assert {k: v for k, v in again["metadata"]["annotations"].items() if k in keys.STATE_KEYS} == (
        state
    )
    assert template_spec(again) == template_spec(obj)

    # Fixed: a normal injection.
    manifest["metadata"]["annotations"] = {keys.INJECT: "true", keys.CONVERGE_MAX: "15s"}
    cluster.apply(yaml.safe_dump(manifest))
    fixed = injected(cluster, namespace)
    assert template_spec(fixed)["terminationGracePeriodSeconds"] == 30
    assert len([e for e in cluster.events(namespace, "web") if e["type"] == "Warning"]) == 1


def test_bad_annotations_do_not_stop_the_operator_serving_others(
    cluster: Cluster, namespace: str
) -> None:
    bad = deployment(namespace, "bad", annotations={keys.INJECT: "maybe"})
    good = deployment(namespace, "good")
    cluster.apply(yaml.safe_dump_all([bad, good]))
    injected(cluster, namespace, "good")
    wait_for(
        lambda: (
            cluster.get("Deployment", namespace, "bad")["metadata"]["annotations"]
            .get(keys.STATE_STATUS, "")
            .startswith("error: ")
        ),
        what="the bad one's status",
    )


def test_sidecar_mode_container_puts_a_regular_container_last(
    cluster: Cluster, namespace: str
) -> None:
    manifest = deployment(
        namespace, annotations={keys.INJECT: "true", keys.SIDECAR_MODE: "container"}
    )
    prediction = plan_command.plan_object(manifest, config.Config(), native=True)
    assert prediction is not None
    cluster.apply(yaml.safe_dump(manifest))
    spec = template_spec(injected(cluster, namespace))
    assert [c["name"] for c in spec["containers"]] == ["app", "quiesce-sidecar"]
    assert "restartPolicy" not in spec["containers"][1]
    assert "initContainers" not in spec
    token = reconcile.current_token(spec)
    assert token
    expected = json.loads(
        json.dumps(prediction["_after"]).replace(plan_command.TOKEN_PLACEHOLDER, token)
    )
    assert reconcile.contains(spec, expected)


def test_a_restarted_operator_makes_no_duplicate_patches_and_no_rollout_storm(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    names = [f"w{i}" for i in range(8)]
    cluster.apply(yaml.safe_dump_all([deployment(namespace, n) for n in names]))
    time.sleep(0.5)
    operator.restart(signal.SIGKILL)  # mid-way: some injected, some not
    for name in names:
        injected(cluster, namespace, name)
    time.sleep(SETTLE)
    versions = {
        name: cluster.get("Deployment", namespace, name)["metadata"]["resourceVersion"]
        for name in names
    }
    operator.restart()  # a clean restart re-lists everything
    time.sleep(SETTLE)
    for name in names:
        obj = cluster.get("Deployment", namespace, name)
        assert obj["metadata"]["generation"] == 2, f"{name}: created, then injected in one write"
        assert obj["metadata"]["resourceVersion"] == versions[name], "the re-list wrote nothing"
        sets = owned_replicasets(cluster, namespace, name)
        # One for the template as created (unless the injection came first), one injected.
        assert len(sets) <= 2
        assert len([rs for rs in sets if template_spec(rs).get("initContainers")]) == 1
        assert [e["reason"] for e in cluster.events(namespace, name)].count("Injected") == 1


def test_the_users_own_template_change_is_one_rollout_with_the_sidecar_kept(
    cluster: Cluster, namespace: str
) -> None:
    manifest = deployment(namespace)
    cluster.apply(yaml.safe_dump(manifest))
    first = injected(cluster, namespace)
    wait_for(lambda: len(owned_replicasets(cluster, namespace)) == 2, what="the injected rollout")

    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/web:2"
    cluster.apply(yaml.safe_dump(manifest))

    def followed() -> dict[str, Any] | None:
        obj = cluster.get("Deployment", namespace, "web")
        annotations = obj["metadata"]["annotations"]
        old = first["metadata"]["annotations"][keys.STATE_TEMPLATE_HASH]
        return obj if annotations[keys.STATE_TEMPLATE_HASH] != old else None

    obj = wait_for(followed, what="the operator to record the user's template")
    spec = template_spec(obj)
    assert spec["containers"][0]["image"] == "registry.example/web:2"
    assert spec["initContainers"][0]["name"] == "quiesce-sidecar"
    assert reconcile.current_token(spec) == reconcile.current_token(template_spec(first))
    time.sleep(SETTLE)
    assert len(owned_replicasets(cluster, namespace)) == 3, "the user's rollout, and no other"
