"""The shutdown sequence: leave Consul, converge, (kept hook), signal, drain; once per kill.

The kubelet runs the app's preStop on every kill of the app container, so a
sequence runs per kill. A trigger (``/prestop`` from the kubelet, or the
sidecar's own SIGTERM: as a regular container both arrive at about the same
moment) starts a sequence, or joins the one running. Each is classified from
the pod (:mod:`quiesce.sidecar.trigger`): a pod that will not run again is
deregistered, and every later trigger joins that sequence; a container kill
that is not a deletion only puts Consul maintenance on, which a
:class:`~quiesce.sidecar.maintenance.Keeper` lifts once the app is back, and
the next trigger starts a new sequence (re-armed). Everything lives inside
one deadline, measured from the sequence's start: the shortest budget that
applies (the plan's grace, the pod's ``deletionGracePeriodSeconds``, a probe's
own grace for a kill that is not a deletion), minus the plan's margin. No wait
or retry may pass it.

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
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from quiesce import hookurl
from quiesce.sidecar import deadlines, maintenance, podevent
from quiesce.sidecar import trigger as kinds
from quiesce.sidecar.consul_backend import ConsulBackend, Instance, PodIdentity
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
from quiesce.sidecar.status import HISTORY_KEPT, JOINS_KEPT, Outcome, Timeline

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
        self.history: deque[Timeline] = deque(maxlen=HISTORY_KEPT)
        """The latest sequences, the running one last (``/status``)."""
        self.recovered: list[dict[str, Any]] = []
        """What a restarted sidecar lifted that an earlier one left behind."""
        self._task: asyncio.Task[Timeline] | None = None
        self._final = False  # a sequence found that the pod will not run again
        self._keeper: asyncio.Task[str] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        if self.settings.kube.base_url:
            try:
                self.kube = KubeClient(self.settings.kube)
            except KubeError as exc:
                log.warning("No API server client: %s", exc)
        await self.sampler.start()
        if self.kube is not None and self.consul is not None:
            self._spawn(self._recover(), "quiesce-recover")

    async def close(self) -> None:
        await self.sampler.close()
        # a last sweep after a deregistration: the app may have registered again as it stopped
        sweep = any(t.get_name() == "quiesce-keep-out" for t in self._background)
        await podevent.wait(self._background)  # the sequence's Event: bounded, never cancelled
        for task in (self._task, self._keeper, *self._background):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.consul is not None:
            if sweep:
                with contextlib.suppress(Exception):
                    await self.consul.deregister(time.monotonic() + 1.0)
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
    def final(self) -> bool:
        """A sequence found that the pod will not run again: later triggers join it."""
        return self._final

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def trigger(self, source: str) -> asyncio.Task[Timeline]:
        """Start a sequence, or join the running one (or the finished one of a final kill)."""
        if self._task is None or (self._task.done() and not self._final):
            if self._keeper is not None and not self._keeper.done():
                self._keeper.cancel()  # the new sequence takes the maintenance over
            self.metrics.sequences.labels(trigger=source).inc()
            number = self.timeline.number + 1 if self.timeline is not None else 1
            log.info(
                "Shutdown sequence started by %s (sequence %d).",
                source,
                number,
                extra={"trigger": source, "sequence": number},
            )
            # the timeline exists before the task runs, so calls in the same tick can join it
            self.timeline = Timeline(trigger=source)
            self.timeline.number = number
            self.history.append(self.timeline)
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
        facts: PodFacts | None = None
        try:
            # the pod (its grace, the kind of kill) is read while Consul maintenance goes on
            facts_task = asyncio.create_task(self._read_pod(tl), name="quiesce-pod")
            classified = asyncio.create_task(self._classify(tl, facts_task), name="quiesce-kind")
            deadline = deadlines.from_plan(
                tl, grace_period_seconds=self.plan.grace_period_seconds, margin=self.plan.margin
            )
            window, rate = await self._quiet_window(tl, deadline)
            tracker = QuietTracker(started=time.monotonic())
            self.sampler.track(tracker)  # sample fast from now on
            es = self._endpointslice_check()
            es_task = asyncio.create_task(es.run(deadline), name="quiesce-endpointslices")
            held = maintenance.Held()
            try:
                kind, instances = await self._deregister(tl, deadline, classified, held)
                facts = await facts_task
                deadline = self._shortened_for_pod(tl, deadline, facts, kind)
                if kind.deregisters:
                    self._final = True
                    if self.consul is not None and instances:
                        out = maintenance.keep_out(self.consul, tl=tl, interval=0.5, budget=1.0)
                        self._spawn(out, "quiesce-keep-out")
                elif self.consul is not None and facts is not None:
                    self._keep(tl, held, facts)
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
                for task in (es_task, facts_task, classified):
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
            # the Event (and the sequence's last log line) after the hook answered
            s = self.settings
            done = podevent.report(
                tl, kube=self.kube, namespace=s.pod_namespace, pod=s.pod_name, uid=s.pod_uid,
                facts=facts, metrics=self.metrics,
            )  # fmt: skip
            self._spawn(done, podevent.TASK)
        return tl

    # --- each phase with what it needs ----------------------------------------

    def _read_pod(self, tl: Timeline) -> Coroutine[Any, Any, PodFacts | None]:
        return deadlines.read_pod_facts(
            tl, kube=self.kube, namespace=self.settings.pod_namespace, name=self.settings.pod_name
        )

    async def _classify(
        self, tl: Timeline, facts_task: asyncio.Task[PodFacts | None]
    ) -> kinds.Classification:
        facts = await facts_task
        why = "no API server client" if self.kube is None else None
        kind = kinds.classify(facts, error=why)
        tl.classification = kind.as_json()
        log.info(
            "This kill is of kind %s: %s%s.",
            kind.kind,
            kind.reason,
            "" if kind.deregisters else "; Consul maintenance only, lifted once the app is back",
            extra={"kind": kind.kind},
        )
        return kind

    def _shortened_for_pod(
        self, tl: Timeline, deadline: float, facts: PodFacts | None, kind: kinds.Classification
    ) -> float:
        return deadlines.shortened_for_pod(
            tl,
            deadline,
            pod_grace=facts.deletion_grace_period if facts else None,
            grace_period_seconds=self.plan.grace_period_seconds,
            margin=self.plan.margin,
            kind=kind.kind,
            probe_grace=self.plan.probe_grace_seconds,
        )

    def _deregister(
        self,
        tl: Timeline,
        deadline: float,
        classified: Awaitable[kinds.Classification],
        held: maintenance.Held,
    ) -> Coroutine[Any, Any, tuple[kinds.Classification, list[Instance]]]:
        return deregister.leave_consul(
            tl,
            deadline=deadline,
            consul=self.consul,
            timeout=self.plan.deregister_timeout,
            metrics=self.metrics,
            classified=classified,
            uid=self.settings.pod_uid,
            held=held,
        )

    # --- after a restart: hold maintenance, lift it, re-arm ------------------------

    async def pod_now(self) -> PodFacts | None:
        """The pod as the API server has it now, or None (no client, or unreachable)."""
        if self.kube is None:
            return None
        try:
            return await read_pod(
                self.kube,
                namespace=self.settings.pod_namespace,
                name=self.settings.pod_name,
                timeout=self.settings.kube.timeout,
            )
        except KubeError as exc:
            log.debug("Could not read the pod: %s", exc)
            return None

    def _keeper_for(
        self, tl: Timeline | None, held: maintenance.Held, before: dict[str, str]
    ) -> maintenance.Keeper:
        assert self.consul is not None
        return maintenance.Keeper(
            consul=self.consul,
            read_pod=self.pod_now,
            tl=tl,
            held=held,
            before=before,
            targets=tuple(self.plan.containers),
            uid=self.settings.pod_uid,
            poll_interval=max(self.settings.poll_interval, 0.5),
            call_budget=max(self.plan.deregister_timeout, 1.0),
            on_final=lambda _facts: self._deregister_after(tl),
        )

    def _keep(self, tl: Timeline, held: maintenance.Held, facts: PodFacts) -> None:
        """Hold this restart's maintenance until the app is back, then lift it."""
        keeper = self._keeper_for(tl, held, dict(facts.container_ids))
        self._keeper = asyncio.create_task(keeper.run(), name="quiesce-keeper")

    async def _deregister_after(self, tl: Timeline | None) -> None:
        """The pod will not run again after all: deregister, never leave it in maintenance."""
        self._final = True
        assert self.consul is not None
        report = await self.consul.deregister(time.monotonic() + self.plan.deregister_timeout)
        log.info(
            "The pod is being deleted or will not run again: %d Consul instances deregistered.",
            len(report.deregistered),
        )
        if tl is not None:
            tl.classification = {**tl.classification, "became": "deletion"}
            tl.summary["instances"] = [i.as_json() for i in report.deregistered]
            for failure in report.failures:
                tl.error("deregister", failure.get("error", ""), **failure)

    async def _recover(self) -> None:
        """A restarted sidecar lifts the maintenance a crashed one left on this pod."""
        facts = await self.pod_now()
        if facts is None or facts.sidecar_restarts == 0 or self.consul is None:
            return  # the first start imports no py-consul: the idle RSS budget
        try:
            checks = await self.consul.agent_checks(time.monotonic() + 10)
        except Exception as exc:
            log.warning("Could not look for maintenance left behind: %s", exc)
            return
        if not any(maintenance.is_ours(c, self.settings.pod_uid) for c in checks.values()):
            return
        log.info("Maintenance left behind by an earlier sidecar: lifted once the app is ready.")
        keeper = self._keeper_for(None, maintenance.Held(), {})
        keeper.undid = self.recovered
        self._keeper = asyncio.create_task(keeper.run(reassert=False), name="quiesce-keeper")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
