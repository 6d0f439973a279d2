"""The pure reconciliation, without a cluster: decisions, idempotence, what each write owns.

An "API server" here is :func:`served`: it applies a decision's write to the
object the way the real one would for the fields that matter (the pod spec
and quiesce's annotations), so multi-step stories can be told without a rig.
The rig tests (``test_operator_*.py``) check the same stories for real.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from quiesce import annotations as keys
from quiesce import config, template
from quiesce.operator import reconcile

TOKEN = "tok-1"
SPEC: dict[str, Any] = {
    "containers": [
        {"name": "app", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]}
    ],
    "terminationGracePeriodSeconds": 30,
}


def workload(
    annotations: dict[str, str] | None = None, spec: dict[str, Any] = SPEC
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "u-1",
            "resourceVersion": "7",
            "annotations": {keys.INJECT: "true"} if annotations is None else annotations,
        },
        "spec": {"template": {"spec": copy.deepcopy(spec)}},
    }


def decide(obj: dict[str, Any], cfg: config.Config | None = None, **kw: Any) -> reconcile.Decision:
    return reconcile.reconcile(
        obj,
        config=cfg or config.Config(),
        cluster_native=kw.pop("cluster_native", True),
        new_token=kw.pop("new_token", TOKEN),
    )


def served(obj: dict[str, Any], decision: reconcile.Decision) -> dict[str, Any]:
    """The object after the API server accepted the decision's write (fields that matter)."""
    out = copy.deepcopy(obj)
    write = decision.write
    assert write is not None
    annotations = out["metadata"].setdefault("annotations", {})
    if write.kind == "merge-patch":
        for key, value in write.body["metadata"]["annotations"].items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
    elif write.kind == "json-patch":
        for op in write.body:
            if op["path"] == "/spec/template/spec":
                out["spec"]["template"]["spec"] = copy.deepcopy(op["value"])
            elif op["path"].startswith("/metadata/annotations/"):
                key = op["path"].rsplit("/", 1)[1].replace("~1", "/").replace("~0", "~")
                if op["op"] == "remove":
                    del annotations[key]
                else:
                    annotations[key] = op["value"]
    else:  # apply: quiesce's fields replaced as the merge would leave them
        assert decision.plan is not None
        original = out["spec"]["template"]["spec"]
        record = json.loads(write.body["metadata"]["annotations"][keys.STATE_REPLACED])
        if keys.STATE_REPLACED in annotations:
            original = template.restore(original, json.loads(annotations[keys.STATE_REPLACED]))
        token = reconcile.current_token(out["spec"]["template"]["spec"]) or TOKEN
        injection = template.inject(
            original, decision.plan, config.Config(), token=token, native=record["native"]
        )
        out["spec"]["template"]["spec"] = injection.pod_spec
        annotations.update(write.body["metadata"]["annotations"])
    out["metadata"]["resourceVersion"] = str(int(out["metadata"]["resourceVersion"]) + 1)
    return out


def test_an_object_without_quiesce_annotations_is_left_alone() -> None:
    decision = decide(workload({"app": "x"}))
    assert decision.write is None
    assert decision.action == "none"


def test_first_injection_is_a_server_side_apply_of_only_quiesces_fields() -> None:
    decision = decide(workload())
    assert decision.action == "inject"
    assert decision.write is not None and decision.write.kind == "apply"
    body = decision.write.body
    assert body["metadata"]["resourceVersion"] == "7"  # precondition: stale copies fail
    ours = body["spec"]["template"]["spec"]
    assert ours["containers"] == [
        {"name": "app", "lifecycle": {"preStop": template.prestop_hook(decision.plan, TOKEN)}}  # type: ignore[arg-type]
    ]
    assert [c["name"] for c in ours["initContainers"]] == [template.SIDECAR_NAME]
    assert ours["terminationGracePeriodSeconds"] == 35
    assert "image" not in ours["containers"][0], "the app's own fields stay the user's"
    annotations = body["metadata"]["annotations"]
    assert set(annotations) == set(keys.STATE_KEYS)
    assert (
        annotations[keys.STATE_STATUS]
        == f"ok: injected plan {annotations[keys.STATE_PLAN_HASH]}, grace 35s, native sidecar"
    )
    assert [e.reason for e in decision.events] == ["Injected"]


def test_an_injected_object_reconciles_to_nothing() -> None:
    obj = served(workload(), decide(workload()))
    again = decide(obj, new_token="another-token")
    assert again.write is None and again.action == "none"


def test_a_changed_annotation_is_one_update_that_keeps_the_token() -> None:
    obj = served(workload(), decide(workload()))
    obj["metadata"]["annotations"][keys.CONVERGE_MAX] = "30s"
    decision = decide(obj, new_token="another-token")
    assert decision.action == "update"
    assert decision.write is not None
    obj = served(obj, decision)
    assert reconcile.current_token(obj["spec"]["template"]["spec"]) == TOKEN
    assert obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 45
    assert decide(obj).write is None


def test_a_new_sidecar_image_rolls_nothing_without_auto_upgrade() -> None:
    obj = served(workload(), decide(workload()))
    newer = config.Config(sidecar=config.SidecarConfig(image="quiesce:9.9"))
    assert decide(obj, newer).write is None


def test_auto_upgrade_moves_to_the_new_sidecar_image() -> None:
    annotations = {keys.INJECT: "true", keys.AUTO_UPGRADE: "true"}
    obj = served(workload(annotations), decide(workload(annotations)))
    newer = config.Config(sidecar=config.SidecarConfig(image="quiesce:9.9"))
    decision = decide(obj, newer)
    assert decision.action == "upgrade"
    assert decision.write is not None
    images = [c["image"] for c in decision.write.body["spec"]["template"]["spec"]["initContainers"]]
    assert images == ["quiesce:9.9"]


def test_the_users_own_template_change_carries_the_new_sidecar_image_along() -> None:
    obj = served(workload(), decide(workload()))
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    newer = config.Config(sidecar=config.SidecarConfig(image="quiesce:9.9"))
    decision = decide(obj, newer)
    assert decision.action == "update"
    assert decision.why == "the workload's own template changed"


def test_removing_inject_restores_the_original_exactly() -> None:
    original = workload()
    obj = served(original, decide(original))
    del obj["metadata"]["annotations"][keys.INJECT]
    decision = decide(obj)
    assert decision.action == "restore"
    assert decision.write is not None and decision.write.kind == "json-patch"
    assert decision.write.body[0] == {
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": obj["metadata"]["resourceVersion"],
    }
    restored = served(obj, decision)
    assert json.dumps(restored["spec"]) == json.dumps(original["spec"])
    assert restored["metadata"]["annotations"] == {}
    assert decide(restored).write is None


@pytest.mark.parametrize("value", ["false", "no", "0"])
def test_inject_false_counts_as_removed(value: str) -> None:
    obj = served(workload(), decide(workload()))
    obj["metadata"]["annotations"][keys.INJECT] = value
    assert decide(obj).action == "restore"


def test_bad_annotations_report_every_error_once_and_touch_no_template() -> None:
    obj = workload({keys.INJECT: "true", keys.CONVERGE_MAX: "soon", "quiesce.dev/bogus": "1"})
    decision = decide(obj)
    assert decision.action == "status"
    assert decision.write is not None and decision.write.kind == "merge-patch"
    assert set(decision.write.body["metadata"]) == {"annotations", "resourceVersion"}
    status = decision.write.body["metadata"]["annotations"][keys.STATE_STATUS]
    assert status.startswith("error: ")
    assert "quiesce.dev/converge-max" in status and "quiesce.dev/bogus" in status
    (event,) = decision.events
    assert event.type == "Warning" and event.reason == "InvalidAnnotations"
    assert event.message.startswith("quiesce left the pod template unchanged: 2 errors:")
    assert "\n- quiesce.dev/bogus" in event.message
    assert "\n- quiesce.dev/converge-max" in event.message
    # Reported: the next reconciliation of the same object writes nothing, posts nothing.
    obj = served(obj, decision)
    again = decide(obj)
    assert again.write is None and not again.events
    # Fixed: injected, and the status says so.
    del obj["metadata"]["annotations"]["quiesce.dev/bogus"]
    obj["metadata"]["annotations"][keys.CONVERGE_MAX] = "7s"
    fixed = decide(obj)
    assert fixed.action == "inject"


def test_bad_annotations_on_an_injected_object_leave_its_template_as_is() -> None:
    obj = served(workload(), decide(workload()))
    obj["metadata"]["annotations"][keys.MARGIN] = "-1s"
    decision = decide(obj)
    assert decision.action == "status"
    assert decision.write is not None and decision.write.kind == "merge-patch"
    obj = served(obj, decision)
    obj["metadata"]["annotations"][keys.MARGIN] = "10s"
    healed = decide(obj)
    assert healed.action == "status", "same plan as before: only the status changes"
    assert healed.write is not None
    assert healed.write.body["metadata"]["annotations"][keys.STATE_STATUS].startswith("ok: ")


def test_an_apps_own_exec_hook_is_replaced_by_one_json_patch() -> None:
    spec = copy.deepcopy(SPEC)
    spec["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    decision = decide(workload(spec=spec))
    assert decision.action == "inject"
    assert decision.write is not None and decision.write.kind == "json-patch"
    ops = decision.write.body
    assert ops[0]["op"] == "test"
    (replace,) = [op for op in ops if op["path"] == "/spec/template/spec"]
    hook = replace["value"]["containers"][0]["lifecycle"]["preStop"]
    assert set(hook) == {"httpGet"}, "the API refuses two handler types in one hook"


def test_a_sidecar_quiesce_did_not_inject_is_an_error() -> None:
    spec = copy.deepcopy(SPEC)
    spec["containers"].append({"name": template.SIDECAR_NAME, "image": "x"})
    decision = decide(workload(spec=spec))
    assert decision.action == "status"
    assert "quiesce did not inject" in decision.errors[0]


def test_a_corrupted_record_is_reported_not_guessed() -> None:
    obj = served(workload(), decide(workload()))
    obj["metadata"]["annotations"][keys.STATE_REPLACED] = "{not json"
    decision = decide(obj)
    assert decision.action == "status"
    assert keys.STATE_REPLACED in decision.errors[0]


@pytest.mark.parametrize(
    ("mode", "cluster_native", "where"),
    [
        ("auto", True, "initContainers"),
        ("auto", False, "containers"),
        ("container", True, "containers"),
        ("native", False, "initContainers"),
    ],
)
def test_sidecar_mode_and_cluster_decide_where_the_sidecar_goes(
    mode: str, cluster_native: bool, where: str
) -> None:
    obj = workload({keys.INJECT: "true", keys.SIDECAR_MODE: mode})
    decision = decide(obj, cluster_native=cluster_native)
    assert decision.write is not None
    ours = decision.write.body["spec"]["template"]["spec"]
    assert template.SIDECAR_NAME in [c["name"] for c in ours[where]]


def test_switching_sidecar_mode_moves_the_sidecar_in_one_update() -> None:
    obj = served(workload(), decide(workload()))
    obj["metadata"]["annotations"][keys.SIDECAR_MODE] = "container"
    decision = decide(obj)
    assert decision.action == "update"
    obj = served(obj, decision)
    spec = obj["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["app", template.SIDECAR_NAME]


def test_leftover_bookkeeping_without_a_record_is_dropped() -> None:
    obj = workload({keys.STATE_STATUS: "error: x"})
    decision = decide(obj)
    assert decision.action == "forget"
    assert decision.write is not None
    assert decision.write.body["metadata"]["annotations"] == {keys.STATE_STATUS: None}


def test_contains_ignores_server_defaults_but_not_differences() -> None:
    wanted = {"a": [{"b": 1}], "c": "x"}
    assert reconcile.contains({"a": [{"b": 1, "default": 2}], "c": "x", "d": 0}, wanted)
    assert not reconcile.contains({"a": [{"b": 2}], "c": "x"}, wanted)
    assert not reconcile.contains({"a": [{"b": 1}, {"b": 1}], "c": "x"}, wanted)


def test_decisions_are_values() -> None:
    decision = decide(workload())
    assert dataclasses.replace(decision) == decision


def test_a_manifest_that_sets_what_quiesce_replaces_gets_one_warning() -> None:
    spec = copy.deepcopy(SPEC)
    spec["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    spec["terminationGracePeriodSeconds"] = 10
    obj = workload(spec=spec)
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(
        {"spec": {"template": {"spec": spec}}}
    )
    decision = decide(obj)
    reasons = [e.reason for e in decision.events]
    assert reasons == ["Injected", "ManifestConflict"]
    message = decision.events[1].message
    assert "containers[app].lifecycle.preStop" in message
    assert "terminationGracePeriodSeconds 10 (the plan needs" in message
    assert decide(served(obj, decision)).events == ()


def test_a_defaulted_grace_is_planned_as_unset_like_quiesce_plan_does() -> None:
    written = copy.deepcopy(SPEC)
    del written["terminationGracePeriodSeconds"]
    obj = workload(
        {keys.INJECT: "true", keys.CONVERGE_MIN: "1s", keys.CONVERGE_MAX: "2s", keys.MARGIN: "1s"}
    )
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(
        {"spec": {"template": {"spec": written}}}
    )
    decision = decide(obj)  # the live spec has the API server's 30 s
    assert decision.plan is not None
    assert decision.plan.template_grace is None
    assert decision.plan.grace_period_seconds < 30
    obj = served(obj, decision)
    assert decide(obj).write is None, "the record remembers: no update loop"
    plain = workload(
        {keys.INJECT: "true", keys.CONVERGE_MIN: "1s", keys.CONVERGE_MAX: "2s", keys.MARGIN: "1s"}
    )
    kept = decide(plain)  # no last-applied, no apply owners: 30 s counts as the user's
    assert kept.plan is not None and kept.plan.grace_period_seconds == 30


@pytest.mark.parametrize(
    ("hook", "ours"),
    [
        ({"httpGet": {"path": "/prestop", "port": 8081,
                      "httpHeaders": [{"name": "X-Quiesce-Token", "value": "t"}]}}, True),
        ({"httpGet": {"path": "/prestop", "port": 8081,
                      "httpHeaders": [{"name": "x-quiesce-token", "value": "t"}]}}, True),
        ({"httpGet": {"path": "/drain", "port": 8080}}, False),
        ({"exec": {"command": ["sleep", "5"]}}, False),
        ({"httpGet": "not a mapping"}, False),
        (None, False),
    ],
)  # fmt: skip
def test_our_hook_is_told_by_its_token_header_whatever_its_case(hook: Any, ours: bool) -> None:
    assert template.is_our_hook(hook) is ours


def test_a_hook_whose_header_name_was_lowercased_is_still_ours_so_updates_apply() -> None:
    obj = workload()
    obj = served(obj, decide(obj))
    hook = obj["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]
    hook["httpGet"]["httpHeaders"][0]["name"] = "x-quiesce-token"
    obj["metadata"]["annotations"][keys.CONVERGE_MAX] = "7s"
    decision = decide(obj)
    assert decision.action == "update" and decision.write is not None
    assert decision.write.kind == "apply"


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("Pod", ("spec",)),
        ("Deployment", ("spec", "template", "spec")),
        ("Unknown", ("spec", "template", "spec")),
        ("CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
        ("PodTemplate", ("template", "spec")),
    ],
)
def test_every_kind_keeps_its_pod_spec_where_kubernetes_does(
    kind: str, path: tuple[str, ...]
) -> None:
    assert template.pod_spec_path(kind) == path
    obj: dict[str, Any] = {"kind": kind}
    node = obj
    for key in path:
        node = node.setdefault(key, {})
    node["containers"] = []
    assert template.pod_spec(obj) == {"containers": []}
    assert template.pod_spec({"kind": kind, "spec": "nonsense"}) is None


def test_json_pointers_escape_tilde_and_slash() -> None:
    assert template.json_pointer("metadata", "annotations", "state.quiesce.dev/x~y") == (
        "/metadata/annotations/state.quiesce.dev~1x~0y"
    )
    assert template.json_pointer() == ""


def test_an_outer_budget_that_cuts_the_plan_short_is_one_warning_event_when_quiesce_writes() -> (
    None
):
    cfg = config.load_config({"outerBudgets": {"nodeShutdown": {"shutdownGracePeriod": "30s"}}})
    obj = workload()
    decision = decide(obj, cfg)
    assert [(e.type, e.reason) for e in decision.events] == [
        ("Normal", "Injected"),
        ("Warning", "OuterBudget"),
    ]
    assert decision.events[1].message.startswith(
        "A graceful node shutdown gives pods of priority 0 (no priorityClassName) only 30s "
        "(outerBudgets.nodeShutdown.shutdownGracePeriod 30s); the plan needs 35s"
    )
    assert decision.events[1].message.endswith("or shorten the plan.")
    assert decide(served(obj, decision), cfg).events == (), "said once, not on every pass"
    assert [e.reason for e in decide(obj).events] == ["Injected"], "600 s autoscaler: fits"
