"""The sequence's one deadline: where it comes from, and when it gets shorter.

Measured from the sequence's start: the plan's grace period minus its margin,
until the pod has been read; then the pod's own ``deletionGracePeriodSeconds``
(an eviction or ``kubectl delete --grace-period`` shortens it) when that is
shorter. The pod is read while deregistration already runs on the plan's
deadline, so leaving Consul never waits for the API server. Every phase gets
the deadline and none may pass it.
"""

from __future__ import annotations

import time

from quiesce.sidecar import phases
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
) -> float:
    """The pod's deadline when its ``deletionGracePeriodSeconds`` is shorter, else ``deadline``."""
    if pod_grace is None or pod_grace >= float(grace_period_seconds):
        return deadline
    deadline = tl.origin + max(0.0, pod_grace - margin)
    tl.deadline = deadline
    tl.grace = {
        "seconds": float(pod_grace),
        "source": "deletionGracePeriodSeconds",
        "margin": margin,
    }
    log.info(
        "The pod's deletionGracePeriodSeconds %d s is shorter than the plan's "
        "%d s: deadline in %.1f s.",
        pod_grace,
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
