"""Hostile annotations cannot take the operator or the webhook down.

Any tenant who may annotate a workload or a pod feeds the cluster-wide operator
input. Whatever the annotations hold, ``reconcile`` answers with a decision and
the webhook's ``admit`` with an admission: an exception that is not the plan's
own error (a parser that is not total, a bug) becomes a refusal that names
"internal error reading annotations", with a Warning Event and a status on the
workload, or a pod admitted unchanged with a warning (denied in strict mode
only). Before this boundary, a ValueError escaped: the operator logged an
uncaught exception and wrote no status and no Event, and kopf turned the
webhook's exception into ``allowed: false``, denying pods whatever the
failurePolicy said.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quiesce import annotations as keys
from quiesce import config, template
from quiesce.operator import reconcile, refusals, webhook

SPEC: dict[str, Any] = {
    "containers": [
        {"name": "app", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]}
    ],
    "terminationGracePeriodSeconds": 30,
}
#: 5,000 leading zeros: past Python's 4,300-digit limit for int(), which raised
#: ValueError out of the duration parser (issue 17).
#: 5,000 leading zeros: Python's int() refuses over 4,300 digits, Go reads them as nothing.
ZEROS = "0" * 5000


def workload(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "resourceVersion": "7",
            "annotations": annotations,
        },
        "spec": {"template": {"spec": copy.deepcopy(SPEC)}},
    }


def pod(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "shop", "annotations": annotations},
        "spec": copy.deepcopy(SPEC),
    }


def decide(annotations: dict[str, str]) -> reconcile.Decision:
    return reconcile.reconcile(
        workload(annotations), config=config.Config(), cluster_native=True, new_token="t"
    )


def admit(annotations: dict[str, str], *, strict: bool = False) -> webhook.Admission:
    return webhook.admit(
        pod(annotations), config=config.Config(), cluster_native=True, token="t", strict=strict
    )


def explode(*_: Any, **__: Any) -> Any:
    raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")


def test_an_exception_in_the_plan_becomes_a_warning_event_and_a_status_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(template, "plan_and_inject", explode)
    with caplog.at_level(logging.ERROR, "quiesce.operator"):
        decision = decide({keys.INJECT: "true"})
        again = decide({keys.INJECT: "true"})
    assert decision.action == "status"
    assert decision.write is not None and decision.write.kind == "merge-patch"
    status = decision.write.body["metadata"]["annotations"][keys.STATE_STATUS]
    assert status.startswith(reconcile.ERROR_PREFIX + refusals.INTERNAL_ERROR + ": ValueError")
    (event,) = decision.events
    assert (event.type, event.reason) == ("Warning", "InternalError")
    assert refusals.INTERNAL_ERROR in event.message
    # The template is not touched: only the status annotation is written.
    assert set(decision.write.body["metadata"]["annotations"]) == {keys.STATE_STATUS}
    assert again == decision
    # One traceback however often the same object is reconciled.
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) <= 1  # 0 if another test logged this very error first


def test_an_already_reported_internal_error_writes_nothing_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(template, "plan_and_inject", explode)
    first = decide({keys.INJECT: "true"})
    assert first.write is not None
    reported = {keys.INJECT: "true", **first.write.body["metadata"]["annotations"]}
    assert decide(reported).action == "none"


def test_the_webhook_admits_the_pod_unchanged_when_the_plan_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(template, "plan_and_inject", explode)
    admission = admit({keys.INJECT: "true"})
    assert admission.result == "invalid"
    assert admission.denial is None and admission.spec == {}
    assert admission.annotations[keys.STATE_STATUS].startswith(
        reconcile.ERROR_PREFIX + refusals.INTERNAL_ERROR
    )
    (warning,) = admission.warnings
    assert refusals.INTERNAL_ERROR in warning
    strict = admit({keys.INJECT: "true"}, strict=True)
    assert strict.result == "denied" and strict.denial is not None
    assert refusals.INTERNAL_ERROR in strict.denial


def test_however_many_and_long_the_errors_what_is_written_and_sent_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Error:
        def __init__(self, i: int) -> None:
            self.text = f"quiesce.dev/containers: no container {'x' * 500}{i}"

        def __str__(self) -> str:
            return self.text

    many = template.Planned(plan_errors=tuple(Error(i) for i in range(10_000)))  # type: ignore[arg-type]
    monkeypatch.setattr(template, "plan_and_inject", lambda *_, **__: many)
    decision = decide({keys.INJECT: "true"})
    assert decision.write is not None
    status = decision.write.body["metadata"]["annotations"][keys.STATE_STATUS]
    assert status.startswith(reconcile.ERROR_PREFIX) and len(status) <= refusals.STATUS_MAX
    assert all(len(e.message) <= refusals.EVENT_MESSAGE_MAX for e in decision.events)
    admission = admit({keys.INJECT: "true"})
    assert len(admission.warnings) <= webhook.admission.WARNINGS_MAX + 1
    assert all(len(w) <= webhook.admission.WARNING_MAX for w in admission.warnings)
    assert admission.warnings[-1] == "quiesce: and 9988 more errors"
    assert len(admission.annotations[keys.STATE_STATUS]) <= refusals.STATUS_MAX
    strict = admit({keys.INJECT: "true"}, strict=True)
    assert strict.denial is not None and len(strict.denial) <= refusals.EVENT_MESSAGE_MAX


def test_the_internal_error_text_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    def huge(*_: Any, **__: Any) -> Any:
        raise RuntimeError("x" * 1_000_000)

    monkeypatch.setattr(template, "plan_and_inject", huge)
    decision = decide({keys.INJECT: "true"})
    assert decision.write is not None
    assert len(decision.write.body["metadata"]["annotations"][keys.STATE_STATUS]) < 400
    assert all(len(e.message) < 1024 for e in decision.events)
    assert all(len(w) < 1024 for w in admit({keys.INJECT: "true"}).warnings)


@pytest.mark.parametrize("key", [keys.CONVERGE_MAX, keys.DRAIN_TIMEOUT, keys.GRACE_PERIOD])
def test_leading_zeros_without_a_unit_are_refused_not_raised(key: str) -> None:
    annotations = {keys.INJECT: "true", key: ZEROS + "1"}
    decision = decide(annotations)
    assert decision.action == "status" and decision.events[0].type == "Warning"
    assert key in decision.events[0].message and "is not a duration" in decision.events[0].message
    assert len(decision.events[0].message) <= refusals.EVENT_MESSAGE_MAX
    assert not decision.changes_template
    admission = admit(annotations)
    assert admission.result == "invalid" and admission.denial is None and not admission.spec


def test_leading_zeros_in_a_valid_duration_read_as_go_reads_them() -> None:
    """Go's time.ParseDuration takes "000…01s" for 1s; so does the plan, without int()'s limit."""
    decision = decide({keys.INJECT: "true", keys.DRAIN_TIMEOUT: ZEROS + "1s"})
    assert decision.action == "inject"
    assert decision.plan is not None and decision.plan.drain_timeout == 1.0


# --- the property: arbitrary annotations never raise -------------------------------------

USER_KEYS = [
    value
    for name, value in vars(keys).items()
    if name.isupper() and isinstance(value, str) and value.startswith(keys.PREFIX)
    and value != keys.PREFIX
]  # fmt: skip
STATE_KEYS = list(keys.STATE_KEYS)
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(categories=["Nd"]), max_size=30).map(lambda t: t + "s"),
    st.integers(min_value=4000, max_value=6000).map(lambda n: "0" * n + "1s"),
    st.text(alphabet=st.characters(categories=["Cc", "Zs", "Nd"]), max_size=40),
    st.sampled_from(["true", "false", "1", "-1", "1e400", "nan", "[]", "{}", "null", "ms"]),
)
annotation_dicts = st.dictionaries(
    st.one_of(st.sampled_from(USER_KEYS + STATE_KEYS), st.text(max_size=20)),
    hostile_text,
    max_size=8,
).map(lambda d: {keys.INJECT: "true", **d} if keys.INJECT not in d else d)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(annotation_dicts)
def test_reconcile_on_arbitrary_annotations_never_raises(annotations: dict[str, str]) -> None:
    decision = decide(annotations)
    assert isinstance(decision, reconcile.Decision)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(annotation_dicts, st.booleans())
def test_admit_on_arbitrary_annotations_never_raises(
    annotations: dict[str, str], strict: bool
) -> None:
    admission = admit(annotations, strict=strict)
    assert isinstance(admission, webhook.Admission)
    if not strict:
        assert admission.denial is None


hostile_ids = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=5), st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from([keys.SIGNAL, keys.CONTAINERS]), hostile_text, max_size=2),
    hostile_ids, hostile_ids, hostile_ids,
    st.sampled_from([None, "restricted", "baseline", "privileged", "", "Restricted"]),
)  # fmt: skip
def test_hostile_security_contexts_and_levels_never_make_reconcile_or_admit_raise(
    annotations: dict[str, str], uid: Any, gid: Any, pod_uid: Any, level: str | None
) -> None:
    spec = copy.deepcopy(SPEC)
    spec["containers"][0]["securityContext"] = {"runAsUser": uid, "runAsGroup": gid}
    spec["securityContext"] = {"runAsUser": pod_uid}
    obj = workload({keys.INJECT: "true", keys.SIGNAL: "SIGQUIT", **annotations})
    obj["spec"]["template"]["spec"] = spec
    decision = reconcile.reconcile(
        obj, config=config.Config(), cluster_native=True, new_token="t", pod_security=level
    )
    assert isinstance(decision, reconcile.Decision)
    p = pod({keys.INJECT: "true", keys.SIGNAL: "SIGQUIT", **annotations})
    p["spec"] = spec
    admission = webhook.admit(
        p, config=config.Config(), cluster_native=True, token="t", pod_security=level
    )
    assert isinstance(admission, webhook.Admission) and admission.denial is None
    for sidecar in (
        c for c in (admission.spec.get("initContainers") or [])
        if c["name"] == template.SIDECAR_NAME
    ):  # fmt: skip
        user = sidecar["securityContext"]["runAsUser"]
        assert isinstance(user, int) and not isinstance(user, bool) and user >= 0
