"""The webhook's pure decisions: one pod in, the same injection template mode makes out."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from quiesce import annotations as keys
from quiesce import config, plan, template
from quiesce.operator import reconcile, webhook
from quiesce.operator import settings as settings_
from quiesce.operator import written as written_


def pod(
    annotations: dict[str, str] | None = None, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7c9f-",
            "namespace": "shop",
            "annotations": {keys.INJECT: "true"} if annotations is None else annotations,
        },
        "spec": spec
        or {
            "containers": [{"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    }


def admit(p: dict[str, Any], **kw: Any) -> webhook.Admission:
    return webhook.admit(p, config=config.Config(), cluster_native=True, token="t0ken", **kw)


def test_an_annotated_pod_gets_exactly_what_template_mode_gives_its_template() -> None:
    p = pod()
    result = admit(p)
    assert result.result == "injected"
    expected_plan = plan.build_plan(p["metadata"]["annotations"], p["spec"])
    expected = template.inject(
        p["spec"], expected_plan, config.Config(), token="t0ken", native=True
    ).pod_spec
    assert {**p["spec"], **result.spec} == expected
    assert result.annotations[keys.STATE_PLAN_HASH] == expected_plan.plan_hash()
    assert not result.warnings and result.denial is None


def test_a_pod_gets_the_status_template_mode_writes_on_a_workload_with_its_template() -> None:
    p = pod()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "1",
                     "annotations": dict(p["metadata"]["annotations"])},
        "spec": {"template": {"spec": copy.deepcopy(p["spec"])}},
    }  # fmt: skip
    decision = reconcile.reconcile(
        deployment, config=config.Config(), cluster_native=True, new_token="t0ken"
    )
    assert decision.write is not None and decision.plan is not None
    status = admit(p).annotations[keys.STATE_STATUS]
    assert status == decision.write.body["metadata"]["annotations"][keys.STATE_STATUS]
    assert status == (
        f"ok: injected plan {decision.plan.plan_hash()}, "
        f"grace {decision.plan.grace_period_seconds}s, native sidecar"
    )


def test_the_pod_given_is_never_modified() -> None:
    p = pod()
    before = copy.deepcopy(p)
    admit(p)
    assert p == before


@pytest.mark.parametrize("annotations", [{}, {keys.INJECT: "false"}, {"other": "x"}])
def test_a_pod_that_does_not_ask_is_left_alone(annotations: dict[str, str]) -> None:
    assert admit(pod(annotations)) == webhook.Admission("skipped")


def test_an_injected_pod_is_left_alone_so_reinvocation_and_template_mode_change_nothing() -> None:
    p = pod()
    first = admit(p)
    p["spec"] = {**p["spec"], **first.spec}
    assert admit(p) == webhook.Admission("already")


def test_invalid_annotations_warn_and_mark_the_pod_without_injecting() -> None:
    result = admit(pod({keys.INJECT: "true", "quiesce.dev/converge-mxa": "10s"}))
    assert result.result == "invalid"
    assert not result.spec and result.denial is None
    assert result.warnings and "quiesce.dev/converge-mxa" in result.warnings[0]
    assert result.warnings[0].startswith("quiesce: the pod is created without its sidecar")
    assert result.annotations[keys.STATE_STATUS].startswith(reconcile.ERROR_PREFIX)


def test_strict_mode_denies_invalid_annotations_with_the_reason() -> None:
    result = admit(pod({keys.INJECT: "true", "quiesce.dev/converge-mxa": "10s"}), strict=True)
    assert result.result == "denied"
    assert result.denial is not None and "quiesce.dev/converge-mxa" in result.denial
    assert not result.spec and not result.annotations


def test_a_job_pod_needs_a_native_sidecar_and_gets_one() -> None:
    spec = {"containers": [{"name": "task", "image": "batch:1"}], "restartPolicy": "Never"}
    assert admit(pod(spec=spec)).result == "injected"
    forced = pod({keys.INJECT: "true", keys.SIDECAR_MODE: "container"}, spec=spec)
    result = admit(forced)
    assert result.result == "invalid" and "restartPolicy Never" in result.warnings[0]


def test_a_defaulted_grace_of_an_applied_pod_is_not_the_users() -> None:
    p = pod()
    p["metadata"]["managedFields"] = [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:containers": {}}},
        }
    ]
    derived = plan.build_plan({keys.INJECT: "true"}, {"containers": p["spec"]["containers"]})
    result = admit(p)
    assert result.spec.get("terminationGracePeriodSeconds", 30) == derived.grace_period_seconds
    # Without that knowledge, 30 s counts as the user's (the safe side: never shorter).
    kept = admit(pod())
    assert kept.spec.get("terminationGracePeriodSeconds", 30) >= 30


def test_missed_pods_are_those_asking_without_a_sidecar_or_a_mark() -> None:
    p = pod()
    assert webhook.missed(p)
    injected = {**p, "spec": {**p["spec"], **admit(p).spec}}
    assert not webhook.missed(injected)
    marked = copy.deepcopy(p)
    marked["metadata"]["annotations"][keys.STATE_STATUS] = "error: x"
    assert not webhook.missed(marked)
    done = {**p, "status": {"phase": "Succeeded"}}
    assert not webhook.missed(done)
    assert not webhook.missed(pod({}))


def test_the_configuration_is_fail_open_short_side_effect_free_and_excludes_namespaces() -> None:
    s = settings_.OperatorSettings(
        webhook=settings_.WebhookSettings(enabled=True, url="https://198.18.0.1:9443")
    )
    body = webhook.configuration_body(s, b"CA")
    (hook,) = body["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["timeoutSeconds"] == 3
    assert hook["sideEffects"] == "None"
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["rules"][0]["resources"] == ["pods"]
    assert hook["clientConfig"] == {"url": "https://198.18.0.1:9443/inject", "caBundle": "Q0E="}
    exprs = hook["namespaceSelector"]["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
            "values": ["kube-system", "quiesce-system"]} in exprs  # fmt: skip
    assert {"key": "quiesce.dev/disabled", "operator": "NotIn", "values": ["true"]} in exprs
    assert {"key": "quiesce.dev/webhook", "operator": "In", "values": ["enabled"]} in exprs


def test_the_chart_reaches_the_webhook_through_a_service() -> None:
    s = settings_.OperatorSettings(webhook=settings_.WebhookSettings(enabled=True))
    config_ = webhook.client_config(s, b"CA")
    assert config_["service"] == {
        "namespace": "quiesce-system", "name": "quiesce-webhook", "path": "/inject", "port": 443,
    }  # fmt: skip
    assert webhook.webhook_hosts(s)[0] == "quiesce-webhook.quiesce-system.svc"


def test_every_namespace_and_exact_scopes_are_expressible() -> None:
    s = settings_.OperatorSettings(
        webhook=settings_.WebhookSettings(namespace_label=""), namespaces=("shop", "web")
    )
    exprs = webhook.namespace_selector(s)["matchExpressions"]
    assert not any(e["key"] == "quiesce.dev/webhook" for e in exprs)
    assert {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop", "web"]} in (
        exprs
    )
    assert webhook.in_scope("op-1", ("op-*",)) and not webhook.in_scope("x", ("op-*",))
    assert not webhook.in_scope("op-bad", ("op-*", "!op-bad"))


def test_a_pod_applied_with_kubectl_and_no_grace_gets_the_plans_shorter_grace() -> None:
    short = {keys.INJECT: "true", keys.CONVERGE_MAX: "5s"}  # the plan needs 20 s
    p = pod(dict(short))
    written = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": p["spec"]["containers"]}}
    p["metadata"]["annotations"][written_.LAST_APPLIED] = json.dumps(written)
    assert admit(p).spec["terminationGracePeriodSeconds"] == 20
    # The user's own 30 s (written in the manifest, or not known otherwise) stays.
    written["spec"]["terminationGracePeriodSeconds"] = 30
    p["metadata"]["annotations"][written_.LAST_APPLIED] = json.dumps(written)
    assert "terminationGracePeriodSeconds" not in admit(p).spec
    assert "terminationGracePeriodSeconds" not in admit(pod(dict(short))).spec
