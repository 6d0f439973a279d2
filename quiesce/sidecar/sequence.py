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
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from quiesce import hookurl
from quiesce.sidecar import deadlines
from quiesce.sidecar.consul_backend import ConsulBackend, Instance, PodIdentity
from quiesce.sidecar.endpointslices import EndpointSliceCheck
from quiesce.sidecar.kubeapi import KubeClient, KubeError, PodFacts
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
from quiesce.sidecar.status import JOINS_KEPT, Outcome, Timeline

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
        self.plan = plan = settings.plan
        self.metrics = metrics or Metrics()
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
            joins = self.timeline.join(source) if self.timeline is not None else 0
            # the first few joins are news; thousands of them are one line each at debug
            log.log(
                logging.INFO if joins <= JOINS_KEPT else logging.DEBUG,
                "%s joined the running shutdown sequence.",
                source,
                extra={"trigger": source, "joins": joins},
            )
        return self._task

    async def run_or_join(self, source: str) -> Timeline:
        # shielded: a kubelet that hangs up must not cancel the pod's shutdown
        return await asyncio.shield(self.trigger(source))

    # --- the sequence --------------------------------------------------------

    async def _run(self, tl: Timeline) -> Timeline:
        try:
            # the pod (its own grace) is read while deregistration runs on the plan's deadline
            facts_task = asyncio.create_task(self._read_pod(tl), name="quiesce-pod")
            deadline = deadlines.from_plan(
                tl, grace_period_seconds=self.plan.grace_period_seconds, margin=self.plan.margin
            )
            window, rate = await self._quiet_window(tl, deadline)
            tracker = QuietTracker(started=time.monotonic())
            self.sampler.track(tracker)  # sample fast from now on
            es = self._endpointslice_check()
            es_task = asyncio.create_task(es.run(deadline), name="quiesce-endpointslices")
            try:
                instances = await self._deregister(tl, deadline)
                facts = await facts_task
                deadline = self._shortened_for_pod(tl, deadline, facts)
                await self._converge(
                    tl,
                    deadline,
                    tracker=tracker,
                    es=es,
                    instances=instances,
                    window=window,
                    rate=rate,
                )
            finally:
                for task in (es_task, facts_task):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            # each later phase runs even when one before it failed unexpectedly
            if self.plan.kept_hook is not None:
                await _guarded(tl, "kept_hook", self._kept_hook(tl, deadline))
            signalled = await _guarded(tl, "signal", self._signal(tl, deadline, facts))
            await _guarded(tl, "drain", self._drain(tl, deadline, signalled or stop.Signalled("")))
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

    # --- each phase with what it needs ----------------------------------------

    def _read_pod(self, tl: Timeline) -> Coroutine[Any, Any, PodFacts | None]:
        return deadlines.read_pod_facts(
            tl, kube=self.kube, namespace=self.settings.pod_namespace, name=self.settings.pod_name
        )

    def _shortened_for_pod(self, tl: Timeline, deadline: float, facts: PodFacts | None) -> float:
        return deadlines.shortened_for_pod(
            tl,
            deadline,
            pod_grace=facts.deletion_grace_period if facts else None,
            grace_period_seconds=self.plan.grace_period_seconds,
            margin=self.plan.margin,
        )

    def _deregister(self, tl: Timeline, deadline: float) -> Coroutine[Any, Any, list[Instance]]:
        return deregister.leave_consul(
            tl,
            deadline=deadline,
            consul=self.consul,
            timeout=self.plan.deregister_timeout,
            metrics=self.metrics,
        )

    def _converge(
        self,
        tl: Timeline,
        deadline: float,
        *,
        tracker: QuietTracker,
        es: EndpointSliceCheck,
        instances: list[Instance],
        window: float,
        rate: float,
    ) -> Coroutine[Any, Any, str]:
        # the kept hook and the drain keep their time before the deadline
        reserve = self.plan.kept_hook_timeout if self.plan.kept_hook is not None else 0.0
        reserve += max(0.0, self.plan.drain_timeout)
        return converge.wait_for_load_balancers(
            tl,
            deadline=deadline,
            floor=self.plan.converge_min,
            ceiling=self.plan.converge_max,
            reserve=reserve,
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

    def _kept_hook(self, tl: Timeline, deadline: float) -> Coroutine[Any, Any, Outcome]:
        hook = self.plan.kept_hook
        assert hook is not None
        url = hookurl.kept_hook_url(
            scheme=hook.scheme,
            host=hook.host or self.settings.pod_ip or "127.0.0.1",  # the pod IP, as the kubelet
            port=hook.port,
            path=hook.path,
        )
        return stop.call_kept_hook(
            tl,
            deadline=deadline,
            url=url,
            headers=hook.headers,
            timeout=self.plan.kept_hook_timeout,
            metrics=self.metrics,
        )

    def _signal(
        self, tl: Timeline, deadline: float, facts: PodFacts | None
    ) -> Coroutine[Any, Any, stop.Signalled]:
        return stop.signal_app(
            tl,
            deadline=deadline,
            signal=self.plan.signal,
            shutdown_url=self.plan.shutdown_url,
            facts=facts,
            container_ids=self.settings.app_container_ids,
            containers=tuple(self.plan.containers),
            proc_root=self.settings.proc_root,
            metrics=self.metrics,
        )

    def _drain(
        self, tl: Timeline, deadline: float, signalled: stop.Signalled
    ) -> Coroutine[Any, Any, Outcome]:
        return drain.hold_hook(
            tl,
            deadline=deadline,
            pids=signalled.pids,
            timeout=self.plan.drain_timeout,
            traffic=self.traffic,
            poll_interval=self.settings.poll_interval,
            metrics=self.metrics,
        )

    async def _quiet_window(self, tl: Timeline, deadline: float) -> tuple[float, float]:
        """The adaptive quiet window and the inbound rate λ it was computed from."""
        plan = self.plan
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

    def _endpointslice_check(self) -> EndpointSliceCheck:
        return EndpointSliceCheck(
            client=self.kube,
            namespace=self.settings.pod_namespace,
            pod_uid=self.settings.pod_uid,
            pod_name=self.settings.pod_name,
            pod_ip=self.settings.pod_ip,
            give_up_after=max(self.settings.kube.timeout * 2, 1.0),
        )


async def _guarded(tl: Timeline, name: str, step: Awaitable[T]) -> T | None:
    """Run one phase; a bug or an unexpected error there is recorded, not fatal."""
    try:
        return await step
    except Exception as exc:
        log.exception("The %s phase failed: %s", name, exc)
        tl.error(name, f"{type(exc).__name__}: {exc}")
        return None
