"""Converge: wait until the load balancers have let go of this pod.

At least the floor, at most the ceiling, and never into the time the later
phases (kept hook, drain) have reserved before the deadline. In between it
ends when every enabled check holds: the instances are gone from Consul's
health results, no EndpointSlice lists the pod as ready, and the pod has been
quiet for the (adaptive) quiet window. The reason it ended is the check
satisfied last, or ``ceiling`` / ``deadline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from quiesce.sidecar import phases
from quiesce.sidecar.consul_backend import ConsulBackend, Instance
from quiesce.sidecar.endpointslices import EndpointSliceCheck
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.quiet import QuietTracker
from quiesce.sidecar.sampler import Sampler
from quiesce.sidecar.status import Outcome, Timeline

log = phases.log


@dataclass
class ConsulWatch:
    """State of the "gone from Consul's health results" check."""

    state: str = "listed"  # listed | gone | unknown
    error: str = ""


async def watch_consul(
    consul: ConsulBackend, instances: list[Instance], state: ConsulWatch, until: float
) -> None:
    """Poll Consul's health results until none of ``instances`` is listed, or ``until``."""
    while time.monotonic() < until:
        try:
            listed = await consul.still_listed(instances, until)
        except Exception as exc:  # ConsulUnavailable, or a client that cannot be built
            state.state, state.error = "unknown", str(exc)
        else:
            if not listed:
                state.state = "gone"
                return
            state.state = "listed"
        await asyncio.sleep(min(0.5, max(0.0, until - time.monotonic())))


async def wait_for_load_balancers(
    tl: Timeline,
    *,
    deadline: float,
    floor: float,
    ceiling: float,
    reserve: float,
    poll_interval: float,
    window: float,
    rate: float,
    tracker: QuietTracker,
    sampler: Sampler,
    endpointslices: EndpointSliceCheck,
    consul: ConsulBackend | None,
    instances: list[Instance],
    metrics: Metrics,
) -> str:
    """Wait for every check, between ``floor`` and ``ceiling`` seconds; the reason it ended.

    ``reserve``: seconds the later phases need before the deadline (at most half
    of what is left). ``window``: the quiet window for the inbound ``rate``.
    """
    es = endpointslices
    start = time.monotonic()
    phase = tl.begin(
        "converge",
        floor=floor,
        ceiling=ceiling,
        quiet_window=round(window, 3),
        inbound_rate=round(rate, 3),
    )
    # quiet only counts after deregistration: before it the LB had every reason to send
    tracker.last_activity = max(tracker.last_activity, start)
    reserve = min(reserve, (deadline - start) / 2)
    ceiling_at = start + ceiling
    end = min(ceiling_at, deadline - reserve)
    consul_state = ConsulWatch()
    consul_task: asyncio.Task[None] | None = None
    if consul is not None and instances:
        consul_task = asyncio.create_task(watch_consul(consul, instances, consul_state, end))
    satisfied: dict[str, float] = {}
    reason = ""
    try:
        while True:
            now = time.monotonic()
            checks: dict[str, bool] = {"floor": now >= start + floor}
            if consul_task is not None:
                checks["consul"] = consul_state.state != "listed"
            if es.state != "skipped":
                checks["endpointslices"] = es.state == "not_ready"
            checks["quiet"] = (
                sampler.error is None and tracker.samples > 0 and tracker.quiet_for(now) >= window
            )
            for name, ok in checks.items():
                if ok:
                    satisfied.setdefault(name, now)
                else:
                    satisfied.pop(name, None)
            if all(checks.values()):
                reason = max(satisfied, key=lambda k: (satisfied[k], k == "quiet"))
                if reason == "quiet" and window >= ceiling:
                    reason = "ceiling"  # no traffic seen before: silence proved nothing
                break
            if now >= end:
                reason = "ceiling" if end >= ceiling_at else "deadline"
                break
            await asyncio.sleep(max(0.0, min(poll_interval, end - now)))
    finally:
        if consul_task is not None:
            consul_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consul_task
    now = time.monotonic()
    detail: dict[str, Any] = {
        "reason": reason,
        "checks": checks,
        "satisfied_at": {k: round(v - tl.origin, 3) for k, v in satisfied.items()},
        "quiet_for": round(tracker.quiet_for(now), 3),
        "last_traffic_at": round(tracker.last_activity - tl.origin, 3),
        "connections_after_deregistration": tracker.new_connections,
        "unseen_opens_after_deregistration": tracker.unseen_opens,
        "last_traffic": list(tracker.sources),
        "endpointslices": {"state": es.state, "reason": es.reason},
    }
    if consul_task is not None:
        detail["consul_health"] = {"state": consul_state.state, "error": consul_state.error}
    if sampler.error:
        detail["quiet_unavailable"] = sampler.error
        tl.error("converge", f"socket table unreadable: {sampler.error}")
    if es.state == "skipped":
        tl.warn("converge", f"EndpointSlice check skipped: {es.reason}")
    outcome: Outcome = "ok" if reason not in ("ceiling", "deadline") else "timeout"
    tl.end(phase, outcome, **detail)
    tl.summary["convergence"] = {"reason": reason, "after": round(now - start, 3)}
    metrics.convergence.labels(reason=reason).inc()
    phases.record_duration(tl, "converge", metrics)
    log.info(
        "Converged after %.2f s: %s (quiet for %.2f s of %.2f s, %d connections "
        "after deregistration).",
        now - start,
        reason,
        tracker.quiet_for(now),
        window,
        tracker.new_connections,
        extra={"reason": reason, "checks": checks, "last_traffic": list(tracker.sources)},
    )
    return reason
