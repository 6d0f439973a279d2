"""Each phase on its own: a function of the timeline, the deadline and what it needs.

No rig: these are the phases' decisions (skip, fail, which reason ended the
wait); the sequence tests run them together against real processes.
"""

from __future__ import annotations

import signal
import subprocess
import time

from quiesce.sidecar import trigger
from quiesce.sidecar.endpointslices import EndpointSliceCheck
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.phases import converge, deregister, drain, stop
from quiesce.sidecar.quiet import Activity, QuietTracker, TrafficFilter, TrafficObserver
from quiesce.sidecar.sampler import Sampler
from quiesce.sidecar.status import Phase, Timeline

TRAFFIC = TrafficFilter(sidecar_port=7979)


def sampler(metrics: Metrics) -> Sampler:
    return Sampler(TrafficObserver(TRAFFIC), metrics=metrics, idle_interval=1.0, busy_interval=0.01)


def phase(tl: Timeline, name: str) -> Phase:
    found = tl.phase(name)
    assert found is not None, [p.name for p in tl.phases]
    return found


def skipped_endpointslices() -> EndpointSliceCheck:
    es = EndpointSliceCheck(client=None, namespace="", pod_uid="", pod_name="", pod_ip="")
    es.state, es.reason = "skipped", "no API server configured"
    return es


async def test_without_a_consul_backend_deregistration_is_skipped_and_finds_nothing() -> None:
    tl = Timeline(trigger="prestop")

    async def unknown() -> trigger.Classification:
        return trigger.classify(None)

    kind, found = await deregister.leave_consul(
        tl,
        deadline=tl.origin + 5,
        consul=None,
        timeout=2.0,
        metrics=Metrics(),
        classified=unknown(),
    )
    assert (kind.kind, found) == ("unknown", [])
    (only,) = tl.phases
    assert (only.name, only.outcome, only.detail["backend"]) == ("deregister", "skipped", "none")


async def wait(tl: Timeline, *, window: float, tracker: QuietTracker, ceiling: float) -> str:
    metrics = Metrics()
    return await converge.wait_for_load_balancers(
        tl,
        deadline=tl.origin + 10,
        floor=0.0,
        ceiling=ceiling,
        reserve=0.0,
        poll_interval=0.01,
        window=window,
        rate=1.0,
        tracker=tracker,
        sampler=sampler(metrics),
        endpointslices=skipped_endpointslices(),
        consul=None,
        instances=[],
        metrics=metrics,
    )


async def test_convergence_ends_on_quiet_once_the_window_has_passed_without_traffic() -> None:
    tl = Timeline(trigger="prestop")
    tracker = QuietTracker(started=time.monotonic())
    tracker.add(Activity(at=time.monotonic()))
    assert await wait(tl, window=0.05, tracker=tracker, ceiling=2.0) == "quiet"
    assert phase(tl, "converge").outcome == "ok"
    assert tl.summary["convergence"]["reason"] == "quiet"
    assert [w["phase"] for w in tl.warnings] == ["converge"]  # the skipped EndpointSlice check


async def test_convergence_without_a_single_sample_waits_for_its_ceiling() -> None:
    tl = Timeline(trigger="prestop")
    tracker = QuietTracker(started=time.monotonic())
    started = time.monotonic()
    assert await wait(tl, window=0.05, tracker=tracker, ceiling=0.2) == "ceiling"
    assert time.monotonic() - started >= 0.2
    assert phase(tl, "converge").outcome == "timeout"


async def test_returning_the_hook_signals_nothing() -> None:
    tl = Timeline(trigger="prestop")
    signalled = await stop.signal_app(
        tl,
        deadline=tl.origin + 5,
        signal=None,
        shutdown_url=None,
        facts=None,
        container_ids=(),
        containers=(),
        proc_root="/proc",
        metrics=Metrics(),
    )
    assert (signalled.mode, signalled.pids) == ("return", [])
    assert phase(tl, "signal").outcome == "ok"


async def test_a_signal_with_no_way_to_find_the_app_fails_and_says_why() -> None:
    tl = Timeline(trigger="prestop")
    signalled = await stop.signal_app(
        tl,
        deadline=tl.origin + 5,
        signal=int(signal.SIGQUIT),
        shutdown_url=None,
        facts=None,
        container_ids=None,
        containers=(),
        proc_root="/proc",
        metrics=Metrics(),
    )
    assert (signalled.mode, signalled.pids) == ("signal", [])
    assert phase(tl, "signal").outcome == "failed"
    assert "cannot be found" in tl.errors[0]["error"]


async def test_drain_is_skipped_when_off_and_nothing_was_signalled() -> None:
    tl = Timeline(trigger="prestop")
    outcome = await drain.hold_hook(
        tl,
        deadline=tl.origin + 5,
        pids=[],
        timeout=0.0,
        traffic=TRAFFIC,
        poll_interval=0.01,
        metrics=Metrics(),
    )
    assert outcome == "skipped"
    assert phase(tl, "drain").detail["reason"] == "drain is off (drain-timeout 0)"


async def test_drain_ends_as_soon_as_the_signalled_app_has_exited() -> None:
    exited = subprocess.Popen(["true"])
    exited.wait()
    tl = Timeline(trigger="prestop")
    outcome = await drain.hold_hook(
        tl,
        deadline=tl.origin + 5,
        pids=[exited.pid],
        timeout=0.0,
        traffic=TRAFFIC,
        poll_interval=0.01,
        metrics=Metrics(),
    )
    assert outcome == "ok"
    assert phase(tl, "drain").detail["waiting_for"] == "app exit"
