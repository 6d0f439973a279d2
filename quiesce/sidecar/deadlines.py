"""The sequence's one deadline: where it comes from, and when it gets shorter.

Measured from the sequence's start: the plan's grace period minus its margin,
until the pod has been read; then the shortest budget that applies, when shorter:
the pod's own ``deletionGracePeriodSeconds`` (an eviction or ``kubectl delete
--grace-period`` shortens it), and for a container kill that is not a deletion
a liveness or startup probe's own ``terminationGracePeriodSeconds``. The pod
is read while Consul maintenance already goes on under the plan's deadline, so
leaving Consul's answers never waits for the API server. Every phase gets the
deadline and none may pass it.
"""

from __future__ import annotations

import time

from quiesce.sidecar import phases, trigger
from quiesce.sidecar.kubeapi import KubeClient, KubeError, PodFacts, read_pod
from quiesce.sidecar.status import Timeline

log = phases.log


def from_plan(tl: Timeline, *, grace_period_seconds: int, margin: float) -> float:
    """The deadline from the plan's grace period; recorded in the timeline."""
    grace = float(grace_period_seconds)
    deadline = tl.origin + max(0.0, grace - margin)
    tl.deadline = deadline
    tl.grace = {"seconds": grace, "source": "plan", "margin": margin}
    return deadline


def shortened_for_pod(
    tl: Timeline,
    deadline: float,
    *,
    pod_grace: int | None,
    grace_period_seconds: int,
    margin: float,
    kind: trigger.Kind = "deletion",
    probe_grace: int | None = None,
) -> float:
    """The deadline of the shortest budget that applies (:func:`trigger.deadline_seconds`):
    the pod's ``deletionGracePeriodSeconds``, or for a kill that is not a deletion a
    probe's own grace, when shorter than the plan's; else ``deadline``."""
    seconds, source = trigger.deadline_seconds(
        kind, plan_grace=grace_period_seconds, pod_grace=pod_grace, probe_grace=probe_grace
    )
    if source == "plan":
        return deadline
    deadline = tl.origin + max(0.0, seconds - margin)
    tl.deadline = deadline
    tl.grace = {"seconds": float(seconds), "source": source, "margin": margin}
    log.info(
        "The %s, %d s, is shorter than the plan's %d s: deadline in %.1f s.",
        source,
        seconds,
        grace_period_seconds,
        deadline - time.monotonic(),
    )
    return deadline


async def read_pod_facts(
    tl: Timeline, *, kube: KubeClient | None, namespace: str, name: str
) -> PodFacts | None:
    """The pod's grace and container IDs; None (and a warning) when it cannot be read."""
    if kube is None or not name:
        return None
    try:
        return await read_pod(
            kube, namespace=namespace, name=name, timeout=min(kube.settings.timeout, 1.0)
        )
    except KubeError as exc:
        tl.warn("deadline", f"could not read the pod, using the plan's grace period: {exc}")
        log.warning("Could not read pod %s: %s", name, exc)
        return None
