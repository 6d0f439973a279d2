"""The one shutdown sequence: deregister, converge, (kept hook), signal, drain.

There is exactly one sequence per sidecar. The first trigger starts it
(``/prestop`` from the kubelet, or the sidecar's own SIGTERM: as a regular
container both arrive at about the same moment and either may be first);
every later trigger joins it and sees the same result. Everything lives
inside one deadline, measured from the sequence's start: the shorter of the
plan's grace period and the pod's own ``deletionGracePeriodSeconds``, minus the
plan's margin. No wait or retry may pass it.

A traffic sampler runs for the sidecar's whole life: every few seconds
while idle (it feeds λ, the inbound rate behind the adaptive quiet window),
every ``poll_interval`` during a sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as signal_module
import time
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from quiesce.sidecar import drain, inet_diag, signals
from quiesce.sidecar.consul_backend import ConsulBackend, Instance, PodIdentity, Report
from quiesce.sidecar.endpointslices import EndpointSliceCheck
from quiesce.sidecar.kubeapi import KubeClient, KubeError, PodFacts, read_pod
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.quiet import (
    QuietTracker,
    RateEstimator,
    TrafficFilter,
    TrafficObserver,
    adaptive_window,
)
from quiesce.sidecar.settings import Settings
from quiesce.sidecar.status import Outcome, Timeline

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _ConsulWatch:
    """State of the "gone from Consul's health results" check."""

    state: str = "listed"  # listed | gone | unknown
    gone_at: float | None = None
    error: str = ""
    polls: int = 0


@dataclass
class _Signalled:
    mode: str
    pids: list[int] = field(default_factory=list)


class Sidecar:
    """Owns the shutdown sequence, the traffic sampler and the clients it needs."""

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
        self.observer = observer or TrafficObserver(self.traffic)
        self.estimator = RateEstimator()
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
        self.sampling_error: str | None = None
        self._task: asyncio.Task[Timeline] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._tracker: QuietTracker | None = None
        self._wake = asyncio.Event()
        self._sample_lock = asyncio.Lock()
        self._closing = False

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        if self.settings.kube.base_url:
            try:
                self.kube = KubeClient(self.settings.kube)
            except KubeError as exc:
                log.warning("No API server client: %s", exc)
        self._sampler = asyncio.create_task(self._sample_forever(), name="quiesce-sampler")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consul is not None:
            await self.consul.close()
        if self.kube is not None:
            await self.kube.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def finished(self) -> bool:
        return self._task is not None and self._task.done()

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

    # --- traffic sampling ----------------------------------------------------

    async def _sample_forever(self) -> None:
        while not self._closing:
            await self._sample_once()
            interval = (
                self.settings.poll_interval
                if self._tracker is not None
                else self.settings.idle_sample_interval
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()

    async def _sample_once(self) -> None:
        """One sample, to the rate estimator while idle or to the quiet tracker in a sequence.

        Serialised: the observer diffs each sample against the previous one.
        """
        async with self._sample_lock:
            tracker = self._tracker
            try:
                activity = await self.observer.asample()
            except (OSError, ValueError, IndexError, TimeoutError) as exc:
                if self.sampling_error is None:
                    log.error(
                        "Cannot read the socket table (inet_diag): %s; the quiet check is "
                        "unavailable and convergence waits for its ceiling.",
                        exc,
                    )
                self.sampling_error = f"{type(exc).__name__}: {exc}"
                return
            self.sampling_error = None
            if tracker is not None:
                tracker.add(activity)
                seen = activity.new_connections + activity.unseen_opens
                if seen:
                    self.metrics.connections_after_deregistration.inc(seen)
            else:
                self.estimator.add(activity)
                self.metrics.inbound_rate.set(self.estimator.rate(activity.at))

    # --- the sequence --------------------------------------------------------

    async def _run(self, tl: Timeline) -> Timeline:
        plan = self.settings.plan
        try:
            # The pod's own grace (shorter after an eviction or --grace-period) is read
            # while deregistration runs on the plan's deadline: leaving Consul never waits
            # for the API server.
            facts_task = asyncio.create_task(self._pod_facts(tl), name="quiesce-pod")
            grace = float(plan.grace_period_seconds)
            deadline = tl.origin + max(0.0, grace - plan.margin)
            tl.deadline = deadline
            tl.grace = {"seconds": grace, "source": "plan", "margin": plan.margin}
            await self._sample_once()  # the traffic since the last idle sample counts too
            rate = self.estimator.rate(time.monotonic())
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
                grace,
                plan.margin,
            )
            tracker = QuietTracker(started=time.monotonic())
            self._tracker = tracker
            self._wake.set()  # sample fast from now on
            es = EndpointSliceCheck(
                client=self.kube,
                namespace=self.settings.pod_namespace,
                pod_uid=self.settings.pod_uid,
                pod_name=self.settings.pod_name,
                pod_ip=self.settings.pod_ip,
                give_up_after=max(self.settings.kube.timeout * 2, 1.0),
            )
            es_task = asyncio.create_task(es.run(deadline), name="quiesce-endpointslices")
            try:
                instances = await self._deregister(tl, deadline)
                facts = await facts_task
                pod_grace = facts.deletion_grace_period if facts else None
                if pod_grace is not None and pod_grace < grace:
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
                await self._converge(
                    tl,
                    deadline=deadline,
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
            if plan.kept_hook is not None:
                await _guarded(tl, "kept_hook", self._kept_hook(tl, deadline))
            signalled = await _guarded(tl, "signal", self._signal(tl, deadline, facts))
            await _guarded(tl, "drain", self._drain(tl, deadline, signalled or _Signalled("")))
        except Exception as exc:  # never leave /prestop hanging on a bug
            log.exception("Shutdown sequence failed: %s", exc)
            tl.error("sequence", f"{type(exc).__name__}: {exc}")
        finally:
            self._tracker = None
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

    def _observe(self, tl: Timeline, name: str) -> None:
        phase = tl.phase(name)
        if phase is not None and phase.ended is not None:
            self.metrics.phase_duration.labels(phase=name).observe(phase.ended - phase.started)

    async def _deregister(self, tl: Timeline, deadline: float) -> list[Instance]:
        plan = self.settings.plan
        if self.consul is None:
            phase = tl.begin("deregister", backend="none")
            tl.end(phase, "skipped", reason="no Consul backend (QUIESCE_CONSUL_BACKEND=none)")
            self._observe(tl, "deregister")
            return []
        phase = tl.begin(
            "deregister", backend=self.consul.name, consul=self.consul.settings.address
        )
        until = min(time.monotonic() + plan.deregister_timeout, deadline)
        try:
            report = await self.consul.deregister(until)
        except Exception as exc:  # e.g. an unreadable CONSUL_CACERT: the sequence goes on
            report = Report(backend=self.consul.name, address=self.consul.settings.address)
            report.failures.append({"call": "client", "error": f"{type(exc).__name__}: {exc}"})
        for failure in report.failures:
            self.metrics.deregistration_failures.labels(backend=self.consul.name).inc()
            tl.error("deregister", failure.get("error", ""), consul=report.address, **failure)
            log.error(
                "Deregistration failure at Consul %s: %s",
                report.address,
                failure.get("error"),
                extra={"consul": report.address},
            )
        for inst in report.deregistered:
            self.metrics.deregistrations.labels(backend=inst.via).inc()
        outcome: Outcome = "ok" if not report.failures else "failed"
        if not report.found and not report.failures:
            log.warning("No Consul instance of this pod found at %s.", report.address)
        tl.end(phase, outcome, **report.as_json())
        tl.summary["instances"] = [i.as_json() for i in report.deregistered]
        self._observe(tl, "deregister")
        return report.found

    async def _watch_consul(
        self, instances: list[Instance], state: _ConsulWatch, until: float
    ) -> None:
        assert self.consul is not None
        while time.monotonic() < until:
            try:
                listed = await self.consul.still_listed(instances, until)
            except Exception as exc:  # ConsulUnavailable, or a client that cannot be built
                state.state, state.error = "unknown", str(exc)
            else:
                state.polls += 1
                if not listed:
                    if state.state != "gone":
                        state.gone_at = time.monotonic()
                    state.state = "gone"
                    return
                state.state = "listed"
            await asyncio.sleep(min(0.5, max(0.0, until - time.monotonic())))

    async def _converge(
        self,
        tl: Timeline,
        *,
        deadline: float,
        tracker: QuietTracker,
        es: EndpointSliceCheck,
        instances: list[Instance],
        window: float,
        rate: float,
    ) -> None:
        plan = self.settings.plan
        start = time.monotonic()
        phase = tl.begin(
            "converge",
            floor=plan.converge_min,
            ceiling=plan.converge_max,
            quiet_window=round(window, 3),
            inbound_rate=round(rate, 3),
        )
        # quiet only counts after deregistration: before it the LB had every reason to send
        tracker.last_activity = max(tracker.last_activity, start)
        reserve = 0.0
        if plan.kept_hook is not None:
            reserve += plan.kept_hook_timeout
        if plan.drain_timeout > 0:
            reserve += plan.drain_timeout
        reserve = min(reserve, (deadline - start) / 2)
        ceiling_at = start + plan.converge_max
        end = min(ceiling_at, deadline - reserve)
        consul_state = _ConsulWatch()
        consul_task: asyncio.Task[None] | None = None
        if self.consul is not None and instances:
            consul_task = asyncio.create_task(self._watch_consul(instances, consul_state, end))
        satisfied: dict[str, float] = {}
        reason = ""
        try:
            while True:
                now = time.monotonic()
                checks: dict[str, bool] = {"floor": now >= start + plan.converge_min}
                if consul_task is not None:
                    checks["consul"] = consul_state.state != "listed"
                if es.state != "skipped":
                    checks["endpointslices"] = es.state == "not_ready"
                checks["quiet"] = (
                    self.sampling_error is None
                    and tracker.samples > 0
                    and tracker.quiet_for(now) >= window
                )
                for name, ok in checks.items():
                    if ok:
                        satisfied.setdefault(name, now)
                    else:
                        satisfied.pop(name, None)
                if all(checks.values()):
                    reason = max(satisfied, key=lambda k: (satisfied[k], k == "quiet"))
                    if reason == "quiet" and window >= plan.converge_max:
                        reason = "ceiling"  # no traffic seen before: silence proved nothing
                    break
                if now >= end:
                    reason = "ceiling" if end >= ceiling_at else "deadline"
                    break
                await asyncio.sleep(max(0.0, min(self.settings.poll_interval, end - now)))
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
            "endpointslices": {"state": es.state, "reason": es.reason},
        }
        if consul_task is not None:
            detail["consul_health"] = {"state": consul_state.state, "error": consul_state.error}
        if self.sampling_error:
            detail["quiet_unavailable"] = self.sampling_error
            tl.error("converge", f"socket table unreadable: {self.sampling_error}")
        if es.state == "skipped":
            tl.warn("converge", f"EndpointSlice check skipped: {es.reason}")
        outcome: Outcome = "ok" if reason not in ("ceiling", "deadline") else "timeout"
        tl.end(phase, outcome, **detail)
        tl.summary["convergence"] = {"reason": reason, "after": round(now - start, 3)}
        self.metrics.convergence.labels(reason=reason).inc()
        self._observe(tl, "converge")
        log.info(
            "Converged after %.2f s: %s (quiet for %.2f s of %.2f s, %d connections "
            "after deregistration).",
            now - start,
            reason,
            tracker.quiet_for(now),
            window,
            tracker.new_connections,
            extra={"reason": reason, "checks": checks},
        )

    async def _kept_hook(self, tl: Timeline, deadline: float) -> None:
        plan = self.settings.plan
        hook = plan.kept_hook
        assert hook is not None
        host = hook.host or self.settings.pod_ip or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        path = hook.path if hook.path.startswith("/") else "/" + hook.path
        url = f"{(hook.scheme or 'HTTP').lower()}://{host}:{hook.port}{path}"
        phase = tl.begin("kept_hook", url=url)
        timeout = max(0.01, min(plan.kept_hook_timeout, deadline - time.monotonic()))
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    url,
                    headers=_headers(hook.headers),
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    ssl=False,
                ) as resp,
            ):
                await resp.read()
                ok = 200 <= resp.status < 400
                tl.end(phase, "ok" if ok else "failed", status=resp.status)
                if not ok:
                    tl.error("kept_hook", f"the app's preStop hook answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            tl.end(phase, "failed", error=f"{type(exc).__name__}: {exc}")
            tl.error("kept_hook", f"the app's preStop hook {url} failed: {type(exc).__name__}")
        self._observe(tl, "kept_hook")

    def _app_processes(
        self, tl: Timeline, facts: PodFacts | None
    ) -> list[tuple[str, signals.AppProcess | None]] | None:
        """The app containers' main processes, or None when they cannot be known."""
        plan = self.settings.plan
        if self.settings.app_container_ids is not None:
            ids = list(self.settings.app_container_ids)
        elif facts is not None and facts.container_ids:
            wanted = set(plan.containers)
            ids = [cid for name, cid in facts.container_ids.items() if not wanted or name in wanted]
        else:
            return None
        own = signals.own_container_ids(self.settings.proc_root)
        ids = [cid for cid in ids if cid not in own]
        found = [(cid, signals.main_process(cid, self.settings.proc_root)) for cid in ids]
        if all(proc is None for _, proc in found) and not signals.others_visible(
            self.settings.proc_root
        ):
            return None  # no shared PID namespace: the app is out of sight, not gone
        return found

    async def _signal(self, tl: Timeline, deadline: float, facts: PodFacts | None) -> _Signalled:
        plan = self.settings.plan
        mode = "signal" if plan.signal is not None else "url" if plan.shutdown_url else "return"
        phase = tl.begin("signal", mode=mode, signal=signals.signal_name(plan.signal))
        procs = await asyncio.to_thread(self._app_processes, tl, facts)
        stop_signal = plan.signal if plan.signal is not None else int(signal_module.SIGTERM)
        result = _Signalled(mode=mode)
        if procs is not None:
            phase.detail["processes"] = [p.as_json() for _, p in procs if p is not None]
            for cid, proc in procs:
                if proc is None:
                    tl.warn(
                        "signal",
                        "no process in the app container: it exited early",
                        container_id=cid[:12],
                    )
                    log.warning("The app container %s has no process left.", cid[:12])
                elif proc.swallows(stop_signal):
                    message = (
                        f"the app's main process {proc.pid} is a shell ({' '.join(proc.argv)}) "
                        f"with children {list(proc.children)} and no handler for "
                        f"{signals.signal_name(stop_signal)}: it will not forward the signal "
                        "(use exec in the entrypoint, or the exec form of CMD)"
                    )
                    tl.warn("signal", message, pid=proc.pid)
                    log.warning("%s", message, extra={"pid": proc.pid})
        if mode == "return":
            tl.end(phase, "ok", action="return from the hook; the kubelet sends the stop signal")
        elif mode == "signal":
            assert plan.signal is not None
            if procs is None:
                tl.end(phase, "failed")
                tl.error(
                    "signal",
                    "the app's process cannot be found: no container IDs (pod status "
                    "unreadable and QUIESCE_APP_CONTAINER_IDS unset), or no process of "
                    "another container is visible (shareProcessNamespace is off)",
                )
            else:
                sent = []
                for _cid, proc in procs:
                    if proc is None or not signals.alive(proc.pid):
                        continue
                    try:
                        signals.send(proc.pid, plan.signal)
                    except OSError as exc:
                        tl.error("signal", f"kill({proc.pid}, {plan.signal}) failed: {exc}")
                        continue
                    sent.append(proc.pid)
                    log.info(
                        "Sent %s to the app's main process %d (%s).",
                        signals.signal_name(plan.signal),
                        proc.pid,
                        " ".join(proc.argv),
                        extra={"pid": proc.pid, "signal": plan.signal},
                    )
                result.pids = sent
                if not sent:
                    tl.error("signal", "no live app process to signal")
                tl.end(phase, "ok" if sent else "failed", sent_to=sent)
        else:
            assert plan.shutdown_url is not None
            await self._post_shutdown(tl, phase, deadline)
            if procs:
                result.pids = [p.pid for _, p in procs if p is not None]
        self._observe(tl, "signal")
        return result

    async def _post_shutdown(self, tl: Timeline, phase: Any, deadline: float) -> None:
        url = self.settings.plan.shutdown_url
        assert url is not None
        if url.startswith("/"):
            url = f"http://127.0.0.1{url}"
        timeout = max(0.01, min(10.0, deadline - time.monotonic()))
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(url, timeout=aiohttp.ClientTimeout(total=timeout), ssl=False) as resp,
            ):
                await resp.read()
                ok = 200 <= resp.status < 400
                tl.end(phase, "ok" if ok else "failed", url=url, status=resp.status)
                if not ok:
                    tl.error("signal", f"shutdown URL {url} answered {resp.status}")
                log.info("POST %s answered %d.", url, resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            tl.end(phase, "failed", url=url, error=f"{type(exc).__name__}: {exc}")
            tl.error("signal", f"shutdown URL {url} failed: {type(exc).__name__}: {exc}")

    async def _drain(self, tl: Timeline, deadline: float, signalled: _Signalled) -> None:
        plan = self.settings.plan
        if signalled.pids:
            # We stopped the app ourselves: hold the hook until it has exited, or the
            # kubelet's own stop signal (after the hook returns) cuts its graceful stop.
            phase = tl.begin("drain", waiting_for="app exit", pids=signalled.pids)
            while time.monotonic() < deadline:
                left = [p for p in signalled.pids if signals.alive(p)]
                if not left:
                    tl.end(phase, "ok", app_exited_at=tl.elapsed())
                    break
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            else:
                left = [p for p in signalled.pids if signals.alive(p)]
                tl.end(phase, "timeout", still_running=left)
                tl.error(
                    "drain",
                    f"the app ignored its signal: {left} still running at the deadline",
                )
            self._observe(tl, "drain")
            return
        if plan.drain_timeout <= 0:
            phase = tl.begin("drain")
            tl.end(phase, "skipped", reason="drain is off (drain-timeout 0)")
            return
        phase = tl.begin("drain", waiting_for="in-flight requests", timeout=plan.drain_timeout)
        until = min(time.monotonic() + plan.drain_timeout, deadline)
        busy: list[inet_diag.TcpSocket] = []
        while True:
            try:
                rows = await inet_diag.dump_async()
            except OSError as exc:
                tl.end(phase, "failed", error=str(exc))
                tl.error("drain", f"socket table unreadable: {exc}")
                break
            busy = drain.busy_connections(rows, self.traffic)
            if not busy:
                tl.end(phase, "ok")
                break
            if time.monotonic() >= until:
                tl.end(
                    phase,
                    "timeout",
                    busy=[f"{r.peer_ip}:{r.peer_port}->{r.local_port}" for r in busy],
                )
                break
            await asyncio.sleep(min(self.settings.poll_interval, until - time.monotonic()))
        self._observe(tl, "drain")


async def _guarded(tl: Timeline, name: str, step: Awaitable[T]) -> T | None:
    """Run one phase; a bug or an unexpected error there is recorded, not fatal."""
    try:
        return await step
    except Exception as exc:
        log.exception("The %s phase failed: %s", name, exc)
        tl.error(name, f"{type(exc).__name__}: {exc}")
        return None


def _headers(raw: Any) -> dict[str, str]:
    """The kept hook's httpHeaders, as a dict, whatever shape the plan stores."""
    if not raw:
        return {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    items: Iterable[Any] = raw
    for item in items:
        if isinstance(item, Mapping):
            out[str(item.get("name"))] = str(item.get("value", ""))
        else:
            name, value = item
            out[str(name)] = str(value)
    return out
