"""The pod Event's reason, message and body, from a timeline (pure: no rig).

Posting it on the real API server, and a refused post, are in tests/e2e/test_events.py.
"""

from __future__ import annotations

import json

import pytest

from quiesce import contract
from quiesce.sidecar import podevent
from quiesce.sidecar.kubeapi import KubeClient, PodFacts, pod_facts
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.settings import KubeSettings
from quiesce.sidecar.status import Timeline


def _timeline(*, reason: str, error: str | None = None, removed: int = 1) -> Timeline:
    tl = Timeline(trigger="prestop")
    tl.number = 1
    tl.classification = {"kind": "deletion"}
    dereg = tl.begin("deregister", backend="auto")
    tl.end(dereg, "ok", maintenance=[])
    tl.summary["instances"] = [{"id": f"web-{i}"} for i in range(removed)]
    conv = tl.begin("converge")
    tl.end(conv, "ok", connections_after_deregistration=2)
    tl.summary["convergence"] = {"reason": reason, "after": 3.5}
    if error:
        tl.error("signal", error)
    tl.finish()
    return tl


@pytest.mark.parametrize(
    ("reason", "error", "expected"),
    [
        ("quiet", None, ("Normal", contract.EVENT_QUIESCED)),
        ("consul", None, ("Normal", contract.EVENT_QUIESCED)),
        ("ceiling", None, ("Warning", contract.EVENT_TIMEOUT)),
        ("deadline", None, ("Warning", contract.EVENT_TIMEOUT)),
        ("ceiling", "no such process", ("Warning", contract.EVENT_FAILED)),
        ("quiet", "no such process", ("Warning", contract.EVENT_FAILED)),
    ],
)
def test_the_event_reason_is_failure_first_then_a_timed_out_convergence(
    reason: str, error: str | None, expected: tuple[str, str]
) -> None:
    assert podevent.reason_of(_timeline(reason=reason, error=error)) == expected


def test_the_message_says_what_was_removed_how_it_converged_and_who_still_sent() -> None:
    text = podevent.message_of(podevent.facts_of(_timeline(reason="quiet", removed=7)))
    assert text.startswith("Deregistered 7 Consul instances (web-0, web-1, web-2, web-3, web-4")
    assert "and 2 more) in " in text
    assert "converged on quiet after 3.50 s; 2 connections after deregistration" in text
    failed = podevent.message_of(podevent.facts_of(_timeline(reason="quiet", error="boom")))
    assert failed.endswith("Errors: signal: boom")


def test_the_body_names_the_pod_its_labels_and_its_controller() -> None:
    facts = pod_facts(
        {
            "metadata": {
                "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "u0"},
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "web-7d4b9c",
                        "uid": "u1",
                        "controller": True,
                    },
                ],
            }
        }
    )
    body = podevent.event_body(
        _timeline(reason="quiet"), namespace="shop", pod="web-7d4b9c-x", uid="u2", facts=facts
    )
    assert body["involvedObject"] == {
        "apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-7d4b9c-x", "uid": "u2"
    }  # fmt: skip
    assert body["related"] == {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "uid": "u1",
        "namespace": "shop",
    }  # fmt: skip
    assert body["metadata"]["labels"] == {"app": "web", "pod-template-hash": "7d4b9c"}
    assert body["source"] == {"component": contract.EVENT_SOURCE}
    facts_json = json.loads(body["metadata"]["annotations"][contract.EVENT_FACTS_ANNOTATION])
    assert facts_json["convergence"] == {"reason": "quiet", "seconds": 3.5}
    # a bare pod has no controller: no related object, never a guess
    bare = podevent.event_body(
        _timeline(reason="quiet"), namespace="shop", pod="p", uid="", facts=PodFacts()
    )
    assert "related" not in bare and "uid" not in bare["involvedObject"]


async def test_with_no_time_left_before_the_deadline_no_post_is_attempted() -> None:
    tl = _timeline(reason="deadline")
    tl.deadline = tl.origin  # the sequence used its whole budget, and half its margin
    tl.grace = {"seconds": 10.0, "source": "plan", "margin": 0.0}
    metrics = Metrics()
    # a real client to an address nothing listens on: it is never called
    kube = KubeClient(KubeSettings(host="127.0.0.1", port=9, scheme="http"))
    try:
        outcome = await podevent.post(
            tl, kube=kube, namespace="shop", pod="p", uid="u", facts=None, metrics=metrics
        )
    finally:
        await kube.close()
    assert outcome == {
        "reason": contract.EVENT_TIMEOUT,
        "result": "skipped",
        "error": "no time left before the deadline",
    }
    assert tl.summary["event"] == outcome
    exposed = metrics.exposition().decode()
    assert 'quiesce_sidecar_events_total{result="skipped"} 1.0' in exposed
    assert 'quiesce_sidecar_events_total{result="failed"} 0.0' in exposed


def test_a_sequence_that_ran_to_its_deadline_may_still_post_in_half_its_margin() -> None:
    tl = _timeline(reason="deadline")
    tl.deadline = tl.origin + 8.0
    tl.grace = {"seconds": 10.0, "source": "plan", "margin": 2.0}
    assert podevent.until(tl) == tl.origin + 9.0  # before the grace period's end at 10 s


async def test_an_unreachable_api_server_is_one_failed_attempt_in_status_and_metrics() -> None:
    tl = _timeline(reason="quiet")
    tl.deadline = tl.origin + 60
    metrics = Metrics()
    kube = KubeClient(KubeSettings(host="127.0.0.1", port=9, scheme="http", timeout=0.5))
    try:
        outcome = await podevent.post(
            tl, kube=kube, namespace="shop", pod="p", uid="u", facts=None, metrics=metrics
        )
    finally:
        await kube.close()
    assert outcome["result"] == "failed" and outcome["forbidden"] is False, outcome
    assert "POST /api/v1/namespaces/shop/events" in outcome["error"]
    assert 'quiesce_sidecar_events_total{result="failed"} 1.0' in metrics.exposition().decode()
