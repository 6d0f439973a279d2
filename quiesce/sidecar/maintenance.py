"""Reversible leaving for a container kill that is not a deletion, and its undoing.

A liveness kill restarts the app in the same pod: deregistering it would leave
a pod that runs again but is gone from Consul unless the app registers itself.
So the agent backend puts Consul's service maintenance on (health-filtered
queries and DNS drop the instance at once, as they do for deregistration), with
a reason that carries the pod's UID, and lifts it once the app is running and
ready again: only the maintenance checks whose reason names this pod, never an
operator's own. The catalog has no maintenance mode: its instances are
deregistered and registered again, exactly as read before (service and its
checks), once the app is back.

:class:`Keeper` runs beside a restart sequence and after it: it re-asserts
maintenance until the app has stopped (an app re-registering with
``replace-existing-checks`` drops the maintenance check), waits until the app
is back, lifts what was set, and reports what it undid in the timeline. A
deletion seen meanwhile turns it into a deregistration: maintenance alone is no
cleanup (the check persists in the agent's data directory).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from quiesce.sidecar import trigger
from quiesce.sidecar.consul_backend import ConsulBackend, ConsulUnavailable, Instance, Report
from quiesce.sidecar.kubeapi import PodFacts
from quiesce.sidecar.status import Timeline

log = logging.getLogger(__name__)

MAINTENANCE_CHECK_PREFIX = "_service_maintenance:"
"""Consul's ID of a service's maintenance check, followed by the service ID."""


def reason_for(uid: str) -> str:
    """The maintenance reason: the pod UID in it tells whose maintenance it is."""
    return f"quiesce: pod {uid} is stopping"


def is_ours(check: dict[str, Any], uid: str) -> bool:
    """A maintenance check this pod's sidecar set (its reason carries the pod UID)."""
    notes = str(check.get("Notes") or "")
    return (
        bool(uid)
        and str(check.get("CheckID", "")).startswith(MAINTENANCE_CHECK_PREFIX)
        and notes.startswith("quiesce:")
        and uid in notes
    )


@dataclass
class Held:
    """What a restart sequence set and must undo once the app is back."""

    agent: dict[str, Instance] = field(default_factory=dict)
    """Agent instances in this sidecar's maintenance, by service ID."""
    catalog: list[dict[str, Any]] = field(default_factory=list)
    """Catalog registrations removed, as read before (service and checks)."""


async def enter(
    consul: ConsulBackend, instances: list[Instance], *, until: float, uid: str, report: Report
) -> list[Instance]:
    """Maintenance on for every agent instance not already in someone else's; which are ours."""
    agent = [i for i in instances if i.via == "agent"]
    if not agent:
        return []
    try:
        checks = await consul.agent_checks(until)
    except ConsulUnavailable as exc:
        report.failures.append({"call": "agent/checks", "error": str(exc)})
        checks = {}
    ours: list[Instance] = []
    for inst in agent:
        existing = checks.get(MAINTENANCE_CHECK_PREFIX + inst.service_id)
        if existing is not None and not is_ours(existing, uid):
            log.info(
                "Consul instance %s is already in maintenance: left as it is.", inst.service_id
            )
            continue
        try:
            await consul.maintenance(inst, True, until=until, reason=reason_for(uid))
        except ConsulUnavailable as exc:
            report.failures.append({"instance": inst.service_id, "error": str(exc)})
            continue
        ours.append(inst)
    return ours


async def remove_catalog(
    consul: ConsulBackend, instances: list[Instance], *, until: float, report: Report
) -> list[dict[str, Any]]:
    """Deregister the catalog instances, keeping each registration to restore it later."""
    kept: list[dict[str, Any]] = []
    for inst in instances:
        if inst.via != "catalog":
            continue
        try:
            entry = await consul.catalog_entry(inst, until)
        except ConsulUnavailable as exc:
            report.failures.append({"instance": inst.service_id, "error": str(exc)})
            entry = None
        if await consul.remove(inst, until, report) and entry is not None:
            kept.append(entry)
    return kept


async def keep_out(consul: ConsulBackend, *, tl: Timeline, interval: float, budget: float) -> None:
    """After a deregistration, until cancelled: an instance registered again is removed again.

    An app that re-registers (a heartbeat, ``replace-existing-checks``) until its own
    SIGTERM would otherwise put a pod that is going away back into Consul.
    """
    while True:
        await asyncio.sleep(interval)
        report = await consul.deregister(time.monotonic() + budget)
        if report.deregistered:
            again = tl.summary.get("removed_again", 0) + len(report.deregistered)
            tl.summary["removed_again"] = again
            log.info(
                "The app registered %s again after deregistration: removed again.",
                ", ".join(i.service_id for i in report.deregistered),
            )


class Keeper:
    """Holds the maintenance of one restart until the app is back, then lifts it."""

    def __init__(
        self,
        *,
        consul: ConsulBackend,
        read_pod: Callable[[], Awaitable[PodFacts | None]],
        tl: Timeline | None,
        held: Held,
        before: dict[str, str],
        targets: tuple[str, ...],
        uid: str,
        poll_interval: float = 0.5,
        call_budget: float = 5.0,
        on_final: Callable[[PodFacts], Awaitable[None]] | None = None,
    ) -> None:
        self.consul = consul
        self.read_pod = read_pod
        self.tl = tl
        self.held = held
        self.before = before
        self.targets = targets
        self.uid = uid
        self.poll_interval = poll_interval
        self.call_budget = call_budget
        self.on_final = on_final
        self.undid: list[dict[str, Any]] = []

    async def run(self, *, reassert: bool = True) -> str:
        """Until the app is back (``lifted``) or the pod will not run again (``final``)."""
        stopped = not reassert
        while True:
            facts = await self.read_pod()
            if facts is not None:
                kind = trigger.classify(facts).kind
                if kind != "restart":
                    self._record("final", kind=kind)
                    if self.on_final is not None:
                        await self.on_final(facts)
                    return "final"
                if not stopped:
                    stopped = trigger.app_stopped(facts, before=self.before, targets=self.targets)
                if stopped and trigger.app_back(facts, before=self.before, targets=self.targets):
                    await self.lift()
                    return "lifted"
            if not stopped:
                await self.reassert()
            await asyncio.sleep(self.poll_interval)

    async def _agent_state(self, until: float) -> tuple[dict[str, Any], list[Instance]]:
        """The agent's checks and this pod's instances, read within one call budget."""
        checks = await self.consul.agent_checks(until)
        return checks, await self.consul.find(until, Report(backend="agent", address=""))

    async def reassert(self) -> None:
        """Maintenance on again where an app's re-registration dropped it."""
        if not self.held.agent:
            return
        until = time.monotonic() + self.call_budget
        try:
            checks, services = await self._agent_state(until)
        except ConsulUnavailable as exc:
            log.warning("Could not re-assert Consul maintenance: %s", exc)
            return
        for inst in services:
            if inst.via != "agent":
                continue
            if MAINTENANCE_CHECK_PREFIX + inst.service_id in checks:
                continue
            try:
                await self.consul.maintenance(inst, True, until=until, reason=reason_for(self.uid))
            except ConsulUnavailable as exc:
                log.warning("Could not re-assert maintenance on %s: %s", inst.service_id, exc)
                continue
            self.held.agent[inst.service_id] = inst
            self._record("reasserted", id=inst.service_id)
            log.info(
                "Consul instance %s was registered again without its maintenance: re-asserted.",
                inst.service_id,
            )

    async def lift(self) -> None:
        """Maintenance off where its reason is this pod's; catalog entries registered again."""
        until = time.monotonic() + self.call_budget
        try:
            checks, found = await self._agent_state(until)
        except ConsulUnavailable as exc:
            log.warning("Could not read Consul to lift maintenance: %s", exc)
            checks, found = {}, []
        for inst in found:
            check = checks.get(MAINTENANCE_CHECK_PREFIX + inst.service_id)
            if inst.via != "agent" or check is None or not is_ours(check, self.uid):
                continue
            try:
                await self.consul.maintenance(inst, False, until=until)
            except ConsulUnavailable as exc:
                log.warning("Could not lift maintenance on %s: %s", inst.service_id, exc)
                continue
            self._record("maintenance off", id=inst.service_id)
            log.info("The app is back: maintenance lifted on %s.", inst.service_id)
        for entry in self.held.catalog:
            try:
                await self.consul.catalog_register(entry, until)
            except ConsulUnavailable as exc:
                log.warning("Could not register %s again: %s", entry["Service"].get("ID"), exc)
                continue
            self._record("registered again", id=entry["Service"].get("ID"), node=entry["Node"])

    def _record(self, action: str, **detail: Any) -> None:
        item = {"action": action, "at": time.time(), **detail}
        self.undid.append(item)
        if self.tl is not None:
            self.tl.undid.append(item)
