"""Stop: call the app's kept preStop hook, then tell the app to stop.

Both run only after convergence, when no load balancer sends any more. The
signal is one of three modes: ``return`` (the hook returns and the kubelet
sends the container's stop signal), ``signal`` (the plan's signal, sent to
the app containers' main processes found through the shared PID namespace
and the container IDs) or ``url`` (POST the app's shutdown URL). In every
mode the app's processes are looked up, to warn about a shell that will not
forward the stop signal and an app that already exited.
"""

from __future__ import annotations

import asyncio
import signal as signal_module
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from quiesce.sidecar import phases, signals
from quiesce.sidecar.kubeapi import PodFacts
from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.status import Outcome, Phase, Timeline

log = phases.log


@dataclass
class Signalled:
    """How the app was told to stop, and the processes the drain then waits for."""

    mode: str
    pids: list[int] = field(default_factory=list)


async def call_kept_hook(
    tl: Timeline,
    *,
    deadline: float,
    url: str,
    headers: Any,
    timeout: float,
    metrics: Metrics,
) -> Outcome:
    """GET the app's own preStop hook, as the kubelet would have; ``ok`` on 2xx/3xx.

    ``url`` from :func:`quiesce.hookurl.kept_hook_url`; ``headers`` the hook's
    httpHeaders, in any shape the plan stores them.
    """
    phase = tl.begin("kept_hook", url=url)
    timeout = max(0.01, min(timeout, deadline - time.monotonic()))
    outcome: Outcome
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                url,
                headers=_headers(headers),
                timeout=aiohttp.ClientTimeout(total=timeout),
                ssl=False,
            ) as resp,
        ):
            await resp.read()
            ok = 200 <= resp.status < 400
            outcome = "ok" if ok else "failed"
            tl.end(phase, outcome, status=resp.status)
            if not ok:
                tl.error("kept_hook", f"the app's preStop hook answered {resp.status}")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        outcome = "failed"
        tl.end(phase, outcome, error=f"{type(exc).__name__}: {exc}")
        tl.error("kept_hook", f"the app's preStop hook {url} failed: {type(exc).__name__}")
    phases.record_duration(tl, "kept_hook", metrics)
    return outcome


def app_processes(
    *,
    facts: PodFacts | None,
    container_ids: tuple[str, ...] | None,
    containers: tuple[str, ...],
    proc_root: str,
) -> list[tuple[str, signals.AppProcess | None]] | None:
    """The app containers' main processes, or None when they cannot be known.

    ``container_ids`` (``QUIESCE_APP_CONTAINER_IDS``) wins over the pod's status;
    ``containers`` (the plan's) restricts the pod's containers, empty: all.
    Blocking (reads /proc): run it in a thread.
    """
    if container_ids is not None:
        ids = list(container_ids)
    elif facts is not None and facts.container_ids:
        wanted = set(containers)
        ids = [cid for name, cid in facts.container_ids.items() if not wanted or name in wanted]
    else:
        return None
    own = signals.own_container_ids(proc_root)
    ids = [cid for cid in ids if cid not in own]
    found = [(cid, signals.main_process(cid, proc_root)) for cid in ids]
    if all(proc is None for _, proc in found) and not signals.others_visible(proc_root):
        return None  # no shared PID namespace: the app is out of sight, not gone
    return found


async def signal_app(
    tl: Timeline,
    *,
    deadline: float,
    signal: int | None,
    shutdown_url: str | None,
    facts: PodFacts | None,
    container_ids: tuple[str, ...] | None,
    containers: tuple[str, ...],
    proc_root: str,
    metrics: Metrics,
) -> Signalled:
    """Tell the app to stop (or leave it to the kubelet); what was signalled."""
    mode = "signal" if signal is not None else "url" if shutdown_url else "return"
    phase = tl.begin("signal", mode=mode, signal=signals.signal_name(signal))
    procs = await asyncio.to_thread(
        app_processes,
        facts=facts,
        container_ids=container_ids,
        containers=containers,
        proc_root=proc_root,
    )
    stop_signal = signal if signal is not None else int(signal_module.SIGTERM)
    result = Signalled(mode=mode)
    if procs is not None:
        phase.detail["processes"] = [published(p) for _, p in procs if p is not None]
        _warn_about(tl, procs, stop_signal)
    if mode == "return":
        tl.end(phase, "ok", action="return from the hook; the kubelet sends the stop signal")
    elif mode == "signal":
        assert signal is not None
        if procs is None:
            tl.end(phase, "failed")
            tl.error(
                "signal",
                "the app's process cannot be found: no container IDs (pod status "
                "unreadable and QUIESCE_APP_CONTAINER_IDS unset), or no process of "
                "another container is visible (shareProcessNamespace is off)",
            )
        else:
            sent = _send(tl, procs, signal)
            result.pids = sent
            if not sent:
                tl.error("signal", "no live app process to signal")
            tl.end(phase, "ok" if sent else "failed", sent_to=sent)
    else:
        assert shutdown_url is not None
        await post_shutdown(tl, phase, url=shutdown_url, deadline=deadline)
        if procs:
            result.pids = [p.pid for _, p in procs if p is not None]
    phases.record_duration(tl, "signal", metrics)
    return result


def published(proc: signals.AppProcess) -> dict[str, object]:
    """What ``/status`` and the logs may say about an app process: never its arguments.

    ``/status`` is readable from the pod network, and an argv carries secrets
    (``redis-server --requirepass <password>``, ``sh -c "... --token ..."``);
    the executable's name is enough to tell which process it was.
    """
    return {
        "pid": proc.pid,
        "container_id": proc.container_id[:12],
        "name": proc.name,
        "children": list(proc.children),
    }


def _warn_about(
    tl: Timeline, procs: list[tuple[str, signals.AppProcess | None]], stop_signal: int
) -> None:
    """An app container with no process left, or a shell that will not forward the signal."""
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
                f"the app's main process {proc.pid} is a shell ({proc.name}) "
                f"with children {list(proc.children)} and no handler for "
                f"{signals.signal_name(stop_signal)}: it will not forward the signal "
                "(use exec in the entrypoint, or the exec form of CMD)"
            )
            tl.warn("signal", message, pid=proc.pid)
            log.warning("%s", message, extra={"pid": proc.pid})


def _send(
    tl: Timeline, procs: list[tuple[str, signals.AppProcess | None]], signal: int
) -> list[int]:
    """Send ``signal`` to every live main process; the PIDs it reached."""
    sent = []
    for _cid, proc in procs:
        if proc is None or not signals.alive(proc.pid):
            continue
        try:
            signals.send(proc.pid, signal)
        except OSError as exc:
            tl.error("signal", f"kill({proc.pid}, {signal}) failed: {exc}")
            continue
        sent.append(proc.pid)
        log.info(
            "Sent %s to the app's main process %d (%s).",
            signals.signal_name(signal),
            proc.pid,
            proc.name,
            extra={"pid": proc.pid, "signal": signal},
        )
    return sent


async def post_shutdown(tl: Timeline, phase: Phase, *, url: str, deadline: float) -> None:
    """POST the app's shutdown URL (at most 10 s); ends ``phase``.

    Always absolute: the plan refuses a relative ``quiesce.dev/shutdown-url``.
    """
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
