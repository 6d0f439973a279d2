"""The receipt where users look: one Event on the pod at the end of every sequence.

``kubectl describe pod`` and ``kubectl get events`` show it, and it outlives the
pod (Events live an hour by default), so a shutdown can be judged after the pod
is gone; ``quiesce status`` reads it back.

- **API: core v1 Events** (``/api/v1/namespaces/<ns>/events``), the ones
  ``kubectl get events`` and ``describe`` show in full (source, count, first and
  last seen), with ``related`` set as events.k8s.io/v1 would.
- **Reason and type**: ``Normal``/``Quiesced``; ``Warning``/``QuiesceTimeout``
  when convergence ended on its ceiling or the deadline; ``Warning``/
  ``QuiesceFailed`` when any phase recorded an error (failure wins).
- **Its workload**: the Event carries the pod's labels (a workload's own selector
  finds its pods' Events) and ``related`` names the pod's controller from its
  ``ownerReferences`` as it is (a ReplicaSet for a Deployment: the sidecar may
  not read ReplicaSets, and needs no more rights for this); ``quiesce status``
  resolves ReplicaSet -> Deployment with its user's rights.
- **Never delays the shutdown**: posted after the sequence ended, beside the
  app's own stop (``/prestop`` has already answered); exactly one attempt, with
  a timeout of at most :data:`POST_TIMEOUT`, ending before the sequence's
  deadline plus half the plan's margin (:func:`until`: inside the grace period);
  no time left means no attempt (``skipped``). A refusal (no ``events
  create`` right) or an unreachable API server is one warning line, the
  ``quiesce_sidecar_events_total{result}`` counter and ``event`` in ``/status``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Final

from quiesce import contract
from quiesce.sidecar.kubeapi import KubeClient, KubeError, PodFacts
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.status import Timeline

log = logging.getLogger("quiesce.sidecar.sequence")  # the sequence's logger: one story

POST_TIMEOUT: Final = 1.0
"""Seconds the one attempt may take at most (also capped by the API timeout and deadline)."""
MIN_TIMEOUT: Final = 0.05
"""Below this much time before :func:`until` the Event is not attempted."""
TIMED_OUT: Final = ("ceiling", "deadline")
MESSAGE_MAX: Final = 1024
"""The API server truncates longer messages; ours stay well below."""


def until(tl: Timeline) -> float:
    """When the one attempt must have ended: the sequence's deadline plus half the margin.

    The hook has answered by then and the app is stopping, so the attempt delays no
    part of the app's shutdown; half the margin (never past the grace period) lets a
    sequence that ran to its deadline, the one most worth reporting, still be told.
    """
    deadline = tl.deadline if tl.deadline is not None else time.monotonic()
    return deadline + max(0.0, float(tl.grace.get("margin") or 0.0)) / 2


def reason_of(tl: Timeline) -> tuple[str, str]:
    """(type, reason) of the sequence's Event: failure first, then a timed-out convergence."""
    if tl.errors:
        return "Warning", contract.EVENT_FAILED
    if (tl.summary.get("convergence") or {}).get("reason") in TIMED_OUT:
        return "Warning", contract.EVENT_TIMEOUT
    return "Normal", contract.EVENT_QUIESCED


def facts_of(tl: Timeline) -> dict[str, Any]:
    """The termination's facts, as the Event's annotation carries them for ``quiesce status``."""
    dereg = tl.phase("deregister") or tl.phase("maintenance")
    conv = tl.phase("converge")
    conv_detail = conv.detail if conv is not None else {}
    removed = [i.get("id", "") for i in tl.summary.get("instances") or []]
    convergence = tl.summary.get("convergence") or {}
    return {
        "sequence": tl.number,
        "kind": tl.classification.get("kind", "unknown"),
        "started_at": tl.as_json()["started_at"],
        "duration": None if tl.ended is None else round(tl.ended - tl.origin, 3),
        "deregister": {
            "phase": dereg.name if dereg is not None else None,
            "seconds": (
                round(dereg.ended - dereg.started, 3)
                if dereg is not None and dereg.ended is not None
                else None
            ),
            "outcome": dereg.outcome if dereg is not None else None,
            "backend": dereg.detail.get("backend") if dereg is not None else None,
            "removed": removed,
            "maintenance": list(dereg.detail.get("maintenance") or []) if dereg else [],
        },
        "convergence": {"reason": convergence.get("reason"), "seconds": convergence.get("after")},
        "connections_after_deregistration": conv_detail.get("connections_after_deregistration"),
        "errors": [f"{e.get('phase')}: {e.get('error')}" for e in tl.errors][:3],
    }


def message_of(facts: dict[str, Any]) -> str:
    """One sentence a user reads in ``kubectl get events``."""
    dereg = facts["deregister"]
    if dereg["phase"] is None or dereg["backend"] == "none":
        left = "No Consul backend"
    else:
        what = dereg["removed"] or dereg["maintenance"]
        verb = "Deregistered" if dereg["phase"] == "deregister" else "Put in maintenance"
        ids = ", ".join(what[:5]) + (f" and {len(what) - 5} more" if len(what) > 5 else "")
        seconds = dereg["seconds"] if dereg["seconds"] is not None else 0.0
        noun = "instance" if len(what) == 1 else "instances"
        listed = f" ({ids})" if ids else ""
        left = f"{verb} {len(what)} Consul {noun}{listed} in {seconds:.2f} s"
    conv = facts["convergence"]
    converged = (
        f"converged on {conv['reason']} after {conv['seconds']:.2f} s"
        if conv["reason"] and conv["seconds"] is not None
        else "no convergence"
    )
    conns = facts["connections_after_deregistration"]
    counted = "unknown" if conns is None else str(conns)
    noun = "connection" if conns == 1 else "connections"
    text = (
        f"{left}; {converged}; {counted} {noun} after "
        f"deregistration; sequence {facts['sequence']} ({facts['kind']}) took "
        f"{facts['duration'] or 0.0:.2f} s."
    )
    if facts["errors"]:
        text += " Errors: " + "; ".join(facts["errors"])
    return text[:MESSAGE_MAX]


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def event_body(
    tl: Timeline, *, namespace: str, pod: str, uid: str, facts: PodFacts | None
) -> dict[str, Any]:
    """The core v1 Event of this sequence on the pod (the API server names it)."""
    kind, reason = reason_of(tl)
    termination = facts_of(tl)
    now = _now_rfc3339()
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{pod}.quiesce-",
            "namespace": namespace,
            "labels": dict(facts.labels) if facts is not None else {},
            "annotations": {contract.EVENT_FACTS_ANNOTATION: json.dumps(termination)},
        },
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": pod},
        "reason": reason,
        "type": kind,
        "message": message_of(termination),
        "source": {"component": contract.EVENT_SOURCE},
        "reportingComponent": contract.EVENT_REPORTER,
        "reportingInstance": pod,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    if uid:
        body["involvedObject"]["uid"] = uid
    if facts is not None and facts.owner is not None:
        body["related"] = {**facts.owner, "namespace": namespace}
    return body


async def post(
    tl: Timeline,
    *,
    kube: KubeClient | None,
    namespace: str,
    pod: str,
    uid: str,
    facts: PodFacts | None,
    metrics: Metrics,
) -> dict[str, Any]:
    """The one attempt; what happened is in ``tl.summary["event"]`` and returned."""
    _, reason = reason_of(tl)
    outcome: dict[str, Any] = {"reason": reason}
    left = until(tl) - time.monotonic()
    timeout = min(POST_TIMEOUT, kube.settings.timeout if kube is not None else 0.0, left)
    if kube is None or not pod:
        outcome.update(result="skipped", error="no API server client")
    elif timeout < MIN_TIMEOUT:
        outcome.update(result="skipped", error="no time left before the deadline")
    else:
        body = event_body(tl, namespace=namespace, pod=pod, uid=uid, facts=facts)
        try:
            made = await kube.post(f"/api/v1/namespaces/{namespace}/events", body, timeout=timeout)
        except KubeError as exc:
            why = "forbidden" if exc.forbidden else "error"
            outcome.update(result="failed", error=str(exc), forbidden=exc.forbidden)
            log.warning(
                "Could not post the %s Event on pod %s (%s): %s",
                reason,
                pod,
                why,
                exc,
                extra={"event": reason, "event_result": "failed"},
            )
        else:
            outcome.update(result="posted", name=(made.get("metadata") or {}).get("name"))
    tl.summary["event"] = outcome
    metrics.events.labels(result=outcome["result"]).inc()
    return outcome


TASK: Final = "quiesce-event"
"""The name of the task that posts the Event and logs the sequence's last line."""


async def report(
    tl: Timeline,
    *,
    kube: KubeClient | None,
    namespace: str,
    pod: str,
    uid: str,
    facts: PodFacts | None,
    metrics: Metrics,
) -> None:
    """Post the Event, then log the sequence's last line with its outcome."""
    outcome: dict[str, Any] = {"result": "failed", "reason": reason_of(tl)[1]}
    try:
        outcome = await post(
            tl, kube=kube, namespace=namespace, pod=pod, uid=uid, facts=facts, metrics=metrics
        )
    finally:
        total = (tl.ended or time.monotonic()) - tl.origin
        log.info(
            "Shutdown sequence finished in %.2f s with %d errors (sequence %d, %s); Event %s %s.",
            total,
            len(tl.errors),
            tl.number,
            tl.classification.get("kind", "unknown"),
            outcome.get("reason"),
            outcome.get("result"),
            extra={
                "duration": round(total, 3),
                "errors": len(tl.errors),
                "event": outcome.get("reason"),
                "event_result": outcome.get("result"),
            },
        )


async def wait(tasks: set[asyncio.Task[Any]]) -> None:
    """Let a running :func:`report` finish (bounded by its own timeout) before the exit."""
    posting = [t for t in tasks if t.get_name() == TASK and not t.done()]
    if posting:
        await asyncio.wait(posting, timeout=POST_TIMEOUT + 0.5)
