"""Deregister: take every Consul instance of this pod out of Consul's answers.

The first phase, and the one that makes load balancers reading Consul let go.
Agent instances go into service maintenance at once (health-filtered queries
and DNS drop them), while the pod is read; then the kind of kill decides
(:mod:`quiesce.sidecar.trigger`): a pod that will not run again is deregistered,
a container kill that is not a deletion stays in maintenance, to be lifted by
:class:`quiesce.sidecar.maintenance.Keeper` once the app is back (the phase is
then named ``maintenance``). Catalog instances have no maintenance: they are
removed either way, and kept to be registered again after a restart.
Failures (Consul unreachable, a bad token, an unreadable CA file) are recorded
and counted, never raised: the sequence goes on to convergence and the signal.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from quiesce.sidecar import maintenance, phases, trigger
from quiesce.sidecar.consul_backend import ConsulBackend, ConsulUnavailable, Instance, Report
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
    classified: Awaitable[trigger.Classification],
    uid: str = "",
    held: maintenance.Held | None = None,
) -> tuple[trigger.Classification, list[Instance]]:
    """Leave within ``timeout`` seconds (never past ``deadline``); the kind and instances found.

    ``held`` receives what a restart must undo (maintenance set, catalog entries removed).
    """
    if consul is None:
        phase = tl.begin("deregister", backend="none")
        tl.end(phase, "skipped", reason="no Consul backend (QUIESCE_CONSUL_BACKEND=none)")
        phases.record_duration(tl, "deregister", metrics)
        return await classified, []
    held = held if held is not None else maintenance.Held()
    phase = tl.begin("deregister", backend=consul.name, consul=consul.settings.address)
    until = min(time.monotonic() + timeout, deadline)
    report = Report(backend=consul.name, address=consul.settings.address)
    kind: trigger.Classification | None = None
    try:
        report.found = await consul.find(until, report)
        ours = await maintenance.enter(consul, report.found, until=until, uid=uid, report=report)
        held.agent.update({i.service_id: i for i in ours})
        held.catalog += await maintenance.remove_catalog(
            consul, report.found, until=until, report=report
        )
        kind = await classified
        if kind.deregisters:
            for inst in report.found:
                if inst.via == "agent":
                    await consul.remove(inst, until, report)
    except ConsulUnavailable as exc:
        report.failures.append({"call": "find", "error": str(exc)})
    except Exception as exc:  # e.g. an unreadable CONSUL_CACERT: the sequence goes on
        report.failures.append({"call": "client", "error": f"{type(exc).__name__}: {exc}"})
    if kind is None:
        kind = await classified
    if not kind.deregisters:
        phase.name = "maintenance"
    for failure in report.failures:
        metrics.deregistration_failures.labels(backend=consul.name).inc()
        tl.error(phase.name, failure.get("error", ""), consul=report.address, **failure)
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
    tl.end(
        phase,
        outcome,
        **report.as_json(),
        maintenance=sorted(held.agent),
        catalog_kept=[e["Service"].get("ID") for e in held.catalog],
    )
    tl.summary["instances"] = [i.as_json() for i in report.deregistered]
    phases.record_duration(tl, phase.name, metrics)
    return kind, report.found
