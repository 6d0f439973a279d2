"""The one shutdown sequence: deregister, converge, (kept hook), signal, drain.

There is exactly one sequence per sidecar. The first trigger starts it
(``/prestop`` from the kubelet, or the sidecar's own SIGTERM: as a regular
container both arrive at about the same moment and either may be first);
every later trigger joins it and sees the same result. Everything lives
inside one deadline, measured from the sequence's start: the shorter of the
plan's grace period and the pod's own ``deletionGracePeriodSeconds``, minus the
plan's margin. No wait or retry may pass it.

The phases live in :mod:`quiesce.sidecar.phases`; the traffic sampler, which
runs for the sidecar's whole life, in :mod:`quiesce.sidecar.sampler`. This
module owns the trigger, the joining and the deadline, and calls the phases
in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from quiesce.sidecar.consul_backend import ConsulBackend, PodIdentity
from quiesce.sidecar.endpointslices import EndpointSliceCheck
from quiesce.sidecar.kubeapi import KubeClient, KubeError, PodFacts, read_pod
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.phases import converge, deregister, drain, stop
from quiesce.sidecar.quiet import (
    QuietTracker,
    RateEstimator,
    TrafficFilter,
    TrafficObserver,
    adaptive_window,
)
from quiesce.sidecar.sampler import Sampler
from quiesce.sidecar.settings import Settings
from quiesce.sidecar.status import Timeline

log = logging.getLogger(__name__)
T = TypeVar("T")


class Sidecar:
    """Owns the shutdown sequence, its deadline, and the clients and sampler it needs."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        observer: TrafficObserver | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        plan = settings.plan
        self.traffic = TrafficFilter(
            sidecar_port=plan.port,
            host_ip=settings.host_ip,
            probe_ports=frozenset(plan.probe_ports),
            long_lived_ports=frozenset(plan.long_lived_ports),
        )
        self.sampler = Sampler(
            observer or TrafficObserver(self.traffic),
            metrics=self.metrics,
            idle_interval=settings.idle_sample_interval,
            busy_interval=settings.poll_interval,
        )
        self.consul: ConsulBackend | None = None
        if settings.consul.backend != "none":
            self.consul = ConsulBackend(
                settings.consul,
                pod=PodIdentity(
                    name=settings.pod_name,
                    namespace=settings.pod_namespace,
                    uid=settings.pod_uid,
                    ip=settings.pod_ip,
                ),
                explicit=tuple(plan.consul_services),
            )
        self.kube: KubeClient | None = None
        self.timeline: Timeline | None = None
        self._task: asyncio.Task[Timeline] | None = None

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        if self.settings.kube.base_url:
            try:
                self.kube = KubeClient(self.settings.kube)
            except KubeError as exc:
                log.warning("No API server client: %s", exc)
        await self.sampler.start()

    async def close(self) -> None:
        await self.sampler.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consul is not None:
            await self.consul.close()
        if self.kube is not None:
            await self.kube.close()

    @property
    def estimator(self) -> RateEstimator:
        """λ, the inbound rate seen while idle (``/status`` shows it)."""
        return self.sampler.estimator

    @property
    def sampling_error(self) -> str | None:
        """Why the socket table is unreadable, or None."""
        return self.sampler.error

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def trigger(self, source: str) -> asyncio.Task[Timeline]:
        """Start the sequence, or join the one already started (or finished)."""
        if self._task is None:
            self.metrics.sequences.labels(trigger=source).inc()
            log.info("Shutdown sequence started by %s.", source, extra={"trigger": source})
            # the timeline exists before the task runs, so calls in the same tick can join it
            self.timeline = Timeline(trigger=source)
            self._task = asyncio.create_task(self._run(self.timeline), name="quiesce-sequence")
        else:
            if self.timeline is not None:
                self.timeline.join(source)
            log.info("%s joined the running shutdown sequence.", source, extra={"trigger": source})
        return self._task

    async def run_or_join(self, source: str) -> Timeline:
        # shielded: a kubelet that hangs up must not cancel the pod's shutdown
        return await asyncio.shield(self.trigger(source))

    # --- the sequence --------------------------------------------------------

    async def _run(self, tl: Timeline) -> Timeline:
        plan = self.settings.plan
        try:
            # The pod's own grace (shorter after an eviction or --grace-period) is read
            # while deregistration runs on the plan's deadline: leaving Consul never waits
            # for the API server.
            facts_task = asyncio.create_task(self._pod_facts(tl), name="quiesce-pod")
            deadline = self._plan_deadline(tl)
            window, rate = await self._quiet_window(tl, deadline)
            tracker = QuietTracker(started=time.monotonic())
            self.sampler.track(tracker)  # sample fast from now on
            es = self._endpointslice_check()
            es_task = asyncio.create_task(es.run(deadline), name="quiesce-endpointslices")
            try:
                instances = await deregister.leave_consul(
                    tl,
                    deadline=deadline,
                    consul=self.consul,
                    timeout=plan.deregister_timeout,
                    metrics=self.metrics,
                )
                facts = await facts_task
                deadline = self._pod_deadline(tl, deadline, facts)
                await converge.wait_for_load_balancers(
                    tl,
                    deadline=deadline,
                    floor=plan.converge_min,
                    ceiling=plan.converge_max,
                    reserve=self._reserve_after_convergence(),
                    poll_interval=self.settings.poll_interval,
                    window=window,
                    rate=rate,
                    tracker=tracker,
                    sampler=self.sampler,
                    endpointslices=es,
                    consul=self.consul,
                    instances=instances,
                    metrics=self.metrics,
                )
            finally:
                for task in (es_task, facts_task):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            # each later phase runs even when one before it failed unexpectedly
            if plan.kept_hook is not None:
                kept_hook = stop.call_kept_hook(
                    tl,
                    deadline=deadline,
                    hook=plan.kept_hook,
                    timeout=plan.kept_hook_timeout,
                    pod_ip=self.settings.pod_ip,
                    metrics=self.metrics,
                )
                await _guarded(tl, "kept_hook", kept_hook)
            signal_app = stop.signal_app(
                tl,
                deadline=deadline,
                signal=plan.signal,
                shutdown_url=plan.shutdown_url,
                facts=facts,
                container_ids=self.settings.app_container_ids,
                containers=tuple(plan.containers),
                proc_root=self.settings.proc_root,
                metrics=self.metrics,
            )
            signalled = await _guarded(tl, "signal", signal_app) or stop.Signalled("")
            hold_hook = drain.hold_hook(
                tl,
                deadline=deadline,
                pids=signalled.pids,
                timeout=plan.drain_timeout,
                traffic=self.traffic,
                poll_interval=self.settings.poll_interval,
                metrics=self.metrics,
            )
            await _guarded(tl, "drain", hold_hook)
        except Exception as exc:  # never leave /prestop hanging on a bug
            log.exception("Shutdown sequence failed: %s", exc)
            tl.error("sequence", f"{type(exc).__name__}: {exc}")
        finally:
            self.sampler.untrack()
            tl.finish()
            total = (tl.ended or time.monotonic()) - tl.origin
            self.metrics.phase_duration.labels(phase="total").observe(total)
            log.info(
                "Shutdown sequence finished in %.2f s with %d errors.",
                total,
                len(tl.errors),
                extra={"duration": round(total, 3), "errors": len(tl.errors)},
            )
        return tl

    def _plan_deadline(self, tl: Timeline) -> float:
        """The deadline from the plan's grace period, until the pod's own is known."""
        plan = self.settings.plan
        grace = float(plan.grace_period_seconds)
        deadline = tl.origin + max(0.0, grace - plan.margin)
        tl.deadline = deadline
        tl.grace = {"seconds": grace, "source": "plan", "margin": plan.margin}
        return deadline

    def _pod_deadline(self, tl: Timeline, deadline: float, facts: PodFacts | None) -> float:
        """The shorter deadline when the pod's ``deletionGracePeriodSeconds`` is shorter."""
        plan = self.settings.plan
        pod_grace = facts.deletion_grace_period if facts else None
        if pod_grace is None or pod_grace >= float(plan.grace_period_seconds):
            return deadline
        deadline = tl.origin + max(0.0, pod_grace - plan.margin)
        tl.deadline = deadline
        tl.grace = {
            "seconds": float(pod_grace),
            "source": "deletionGracePeriodSeconds",
            "margin": plan.margin,
        }
        log.info(
            "The pod's deletionGracePeriodSeconds %d s is shorter than the plan's "
            "%d s: deadline in %.1f s.",
            pod_grace,
            plan.grace_period_seconds,
            deadline - time.monotonic(),
        )
        return deadline

    async def _quiet_window(self, tl: Timeline, deadline: float) -> tuple[float, float]:
        """The adaptive quiet window and the inbound rate λ it was computed from."""
        plan = self.settings.plan
        await self.sampler.sample_once()  # the traffic since the last idle sample counts too
        rate = self.sampler.estimator.rate(time.monotonic())
        window = adaptive_window(
            rate=rate,
            epsilon=plan.epsilon,
            minimum=plan.quiet_window,
            ceiling=plan.converge_max,
        )
        self.metrics.quiet_window.set(window)
        log.info(
            "Quiet window %.2f s for %.2f inbound events/s; the plan's deadline is in "
            "%.1f s (grace %.0f s, margin %.1f s).",
            window,
            rate,
            deadline - tl.origin,
            float(plan.grace_period_seconds),
            plan.margin,
        )
        return window, rate

    def _reserve_after_convergence(self) -> float:
        """Seconds the kept hook and the drain need before the deadline."""
        plan = self.settings.plan
        reserve = 0.0
        if plan.kept_hook is not None:
            reserve += plan.kept_hook_timeout
        if plan.drain_timeout > 0:
            reserve += plan.drain_timeout
        return reserve

    def _endpointslice_check(self) -> EndpointSliceCheck:
        return EndpointSliceCheck(
            client=self.kube,
            namespace=self.settings.pod_namespace,
            pod_uid=self.settings.pod_uid,
            pod_name=self.settings.pod_name,
            pod_ip=self.settings.pod_ip,
            give_up_after=max(self.settings.kube.timeout * 2, 1.0),
        )

    async def _pod_facts(self, tl: Timeline) -> PodFacts | None:
        if self.kube is None or not self.settings.pod_name:
            return None
        try:
            return await read_pod(
                self.kube,
                namespace=self.settings.pod_namespace,
                name=self.settings.pod_name,
                timeout=min(self.settings.kube.timeout, 1.0),
            )
        except KubeError as exc:
            tl.warn("deadline", f"could not read the pod, using the plan's grace period: {exc}")
            log.warning("Could not read pod %s: %s", self.settings.pod_name, exc)
            return None


async def _guarded(tl: Timeline, name: str, step: Awaitable[T]) -> T | None:
    """Run one phase; a bug or an unexpected error there is recorded, not fatal."""
    try:
        return await step
    except Exception as exc:
        log.exception("The %s phase failed: %s", name, exc)
        tl.error(name, f"{type(exc).__name__}: {exc}")
        return None
