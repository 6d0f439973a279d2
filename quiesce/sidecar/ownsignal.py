"""The sidecar's own SIGTERM as a regular container: a shutdown only if the pod goes away.

As a regular container the kubelet signals the sidecar at the same moment it
calls the app's hook when the pod is deleted; but it also signals it alone
when the sidecar itself is killed (its own liveness probe failed), while the
app keeps running. That must never deregister a pod that goes on serving. So
the signal starts (or joins) the sequence only when the pod is being deleted,
will not run again, or cannot be read (the safe side, as for ``/prestop``);
otherwise the sidecar stays registered and keeps serving ``/prestop`` until
the plan's deadline, because during a node shutdown the app's hook may come
after the signal.
"""

from __future__ import annotations

import asyncio
import logging
import time

from quiesce.sidecar import trigger
from quiesce.sidecar.sequence import Sidecar

log = logging.getLogger(__name__)


async def on_sigterm(sidecar: Sidecar) -> None:
    """Returns when the process may exit."""
    if sidecar.running or sidecar.final or sidecar.kube is None:
        await sidecar.run_or_join("sigterm")
        return
    origin = time.monotonic()
    kind = trigger.classify(await sidecar.pod_now())
    if kind.deregisters:
        await sidecar.run_or_join("sigterm")
        return
    plan = sidecar.plan
    left = max(0.0, plan.grace_period_seconds - plan.margin - (time.monotonic() - origin))
    log.info(
        "SIGTERM while the pod is not being deleted: it stays registered; serving /prestop "
        "for %.1f s more.",
        left,
        extra={"kind": kind.kind},
    )
    await asyncio.sleep(left)
    if sidecar.running:  # a /prestop that came meanwhile finishes first
        await sidecar.run_or_join("sigterm")
