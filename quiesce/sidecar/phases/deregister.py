"""Deregister: take every Consul instance of this pod out of Consul.

The first phase, and the one that makes load balancers reading Consul let go.
Failures (Consul unreachable, a bad token, an unreadable CA file) are recorded
and counted, never raised: the sequence goes on to convergence and the signal.
"""

from __future__ import annotations

import time

from quiesce.sidecar import phases
from quiesce.sidecar.consul_backend import ConsulBackend, Instance, Report
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.status import Outcome, Timeline

log = phases.log


async def leave_consul(
    tl: Timeline,
    *,
    deadline: float,
    consul: ConsulBackend | None,
    timeout: float,
    metrics: Metrics,
) -> list[Instance]:
    """Deregister within ``timeout`` seconds (never past ``deadline``); the instances found."""
    if consul is None:
        phase = tl.begin("deregister", backend="none")
        tl.end(phase, "skipped", reason="no Consul backend (QUIESCE_CONSUL_BACKEND=none)")
        phases.record_duration(tl, "deregister", metrics)
        return []
    phase = tl.begin("deregister", backend=consul.name, consul=consul.settings.address)
    until = min(time.monotonic() + timeout, deadline)
    try:
        report = await consul.deregister(until)
    except Exception as exc:  # e.g. an unreadable CONSUL_CACERT: the sequence goes on
        report = Report(backend=consul.name, address=consul.settings.address)
        report.failures.append({"call": "client", "error": f"{type(exc).__name__}: {exc}"})
    for failure in report.failures:
        metrics.deregistration_failures.labels(backend=consul.name).inc()
        tl.error("deregister", failure.get("error", ""), consul=report.address, **failure)
        log.error(
            "Deregistration failure at Consul %s: %s",
            report.address,
            failure.get("error"),
            extra={"consul": report.address},
        )
    for inst in report.deregistered:
        metrics.deregistrations.labels(backend=inst.via).inc()
    outcome: Outcome = "ok" if not report.failures else "failed"
    if not report.found and not report.failures:
        log.warning("No Consul instance of this pod found at %s.", report.address)
    tl.end(phase, outcome, **report.as_json())
    tl.summary["instances"] = [i.as_json() for i in report.deregistered]
    phases.record_duration(tl, "deregister", metrics)
    return report.found
