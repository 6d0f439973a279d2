"""The kubelet's termination arithmetic, as pure as it can be.

Mirrors, and cites, the kubelet:

- pkg/kubelet/pod_workers.go ``calculateEffectiveGracePeriod``: the pod's grace
  is ``metadata.deletionGracePeriodSeconds`` (the API server's "bedrock truth"),
  else ``spec.terminationGracePeriodSeconds``; it can only shrink; never < 1.
- pkg/kubelet/kuberuntime/kuberuntime_container.go ``killContainer`` (moved to
  kuberuntime_container_termination.go ``doTerminate`` upstream):
  ``setTerminationGracePeriod`` (a liveness/startup probe's own
  ``terminationGracePeriodSeconds`` when the probe killed it); minus the preStop
  hook's elapsed whole seconds; minus the whole seconds spent waiting for the
  container's turn; floor ``minimumGracePeriodInSeconds`` = 2; then
  ``StopContainer(grace)``.
- pkg/kubelet/kuberuntime/kuberuntime_termination_order.go: native sidecars wait
  for every regular container, and for every sidecar declared after them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

MINIMUM_GRACE_SECONDS: Final = 2
"""``minimumGracePeriodInSeconds`` in kuberuntime_container.go."""

DEFAULT_GRACE_SECONDS: Final = 30


def is_sidecar(init_container: Mapping[str, Any]) -> bool:
    """A native sidecar: an init container with ``restartPolicy: Always``."""
    return init_container.get("restartPolicy") == "Always"


def pod_grace(pod: Mapping[str, Any], current: int | None = None) -> int:
    """calculateEffectiveGracePeriod: deletion grace, else spec grace; only shrinks; >= 1.

    A deletion grace of 0 (a forced deletion) counts as set: the pod gets 1 s.
    """
    grace = current or 0
    overridden = False
    deletion = pod.get("metadata", {}).get("deletionGracePeriodSeconds")
    if deletion is not None and (grace == 0 or int(deletion) < grace):
        grace = int(deletion)
        overridden = True
    if not overridden and grace == 0:
        spec_grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
        grace = int(spec_grace) if spec_grace is not None else DEFAULT_GRACE_SECONDS
    return max(grace, 1)


def container_grace(
    pod: Mapping[str, Any], container: Mapping[str, Any], *, probe_kind: str | None = None
) -> int:
    """setTerminationGracePeriod: the pod's grace, or the failed probe's own."""
    if probe_kind is not None:
        probe = container.get(f"{probe_kind}Probe") or {}
        own = probe.get("terminationGracePeriodSeconds")
        if own is not None:
            return int(own)
    deletion = pod.get("metadata", {}).get("deletionGracePeriodSeconds")
    if deletion is not None:
        return int(deletion)
    spec_grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
    return int(spec_grace) if spec_grace is not None else DEFAULT_GRACE_SECONDS


def after_hook(grace: int, hook_elapsed_seconds: float) -> int:
    """What is left for the stop signal: whole elapsed seconds off, floor 2."""
    return max(grace - int(hook_elapsed_seconds), MINIMUM_GRACE_SECONDS)


class TerminationOrdering:
    """newTerminationOrdering / waitForTurn / containerTerminated, with asyncio events."""

    def __init__(self, spec: Mapping[str, Any], running: Iterable[str]) -> None:
        running_set = set(running)
        self.terminated: dict[str, asyncio.Event] = {}
        self.prereqs: dict[str, list[asyncio.Event]] = {}
        main_events: list[asyncio.Event] = []
        for c in spec.get("containers") or []:
            ev = asyncio.Event()
            self.terminated[c["name"]] = ev
            main_events.append(ev)
            if c["name"] not in running_set:
                ev.set()
        previous_sidecar: str | None = None
        for ic in reversed(spec.get("initContainers") or []):
            ev = asyncio.Event()
            self.terminated[ic["name"]] = ev
            if ic["name"] not in running_set:
                ev.set()
            if is_sidecar(ic):
                self.prereqs[ic["name"]] = list(main_events)
                if previous_sidecar is not None:
                    self.prereqs[ic["name"]].append(self.terminated[previous_sidecar])
                previous_sidecar = ic["name"]

    async def wait_for_turn(self, name: str, grace: float) -> float:
        """Wait for the prerequisites, at most ``grace`` seconds; returns seconds waited."""
        if grace <= 0:
            return 0.0
        start = time.monotonic()
        waits = [ev.wait() for ev in self.prereqs.get(name, [])]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), grace)
        return time.monotonic() - start

    def container_terminated(self, name: str) -> None:
        ev = self.terminated.get(name)
        if ev is not None:
            ev.set()
