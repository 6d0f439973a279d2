"""Which kill is this? Each ``/prestop`` (or SIGTERM) classified from the pod object.

The kubelet runs a container's preStop on every kill of that container, not
only when its pod is deleted: a failed liveness or startup probe, too. What
the sidecar may do depends on whether the pod runs again:

* ``deletion``: ``metadata.deletionTimestamp`` is set;
* ``final``: the pod will never run again (``status.phase`` Failed, or a
  ``DisruptionTarget`` condition such as ``TerminationByKubelet``), handled
  like a deletion;
* ``restart``: a container kill that is not a deletion; only reversible steps
  (Consul maintenance), lifted once the app is back;
* ``unknown``: the pod could not be read; handled like a deletion, the safe
  side: a pod that keeps running and re-registers itself comes back on its own,
  while a pod that is really going away must never stay routable.

Pure functions, no I/O: table-tested in tests/sidecar/test_trigger.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from quiesce.sidecar.kubeapi import SIDECAR_CONTAINER, PodFacts

Kind = Literal["deletion", "final", "restart", "unknown"]


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reason: str

    @property
    def deregisters(self) -> bool:
        """Only a kill whose pod runs again keeps its Consul registration."""
        return self.kind != "restart"

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "reason": self.reason}


def classify(facts: PodFacts | None, *, error: str | None = None) -> Classification:
    """The kind of kill from the pod as read at the trigger (None: it could not be read)."""
    if facts is None:
        return Classification("unknown", error or "the pod could not be read")
    if facts.deleting:
        return Classification("deletion", "metadata.deletionTimestamp is set")
    if facts.phase == "Failed":
        return Classification("final", "status.phase is Failed")
    if facts.disruption is not None:
        return Classification("final", f"DisruptionTarget condition ({facts.disruption})")
    return Classification("restart", "a container kill while the pod is not being deleted")


def deadline_seconds(
    kind: Kind,
    *,
    plan_grace: int,
    pod_grace: int | None,
    probe_grace: int | None,
) -> tuple[int, str]:
    """The shortest budget that applies, in seconds, and where it comes from.

    The pod's ``deletionGracePeriodSeconds`` applies whenever it is set. A probe's
    own ``terminationGracePeriodSeconds`` applies to a kill that is not a deletion:
    the sidecar cannot tell a liveness kill from another kubelet kill, so it takes
    the shorter, the side on which the kubelet never kills the app mid-sequence.
    """
    best, source = plan_grace, "plan"
    if pod_grace is not None and pod_grace < best:
        best, source = pod_grace, "deletionGracePeriodSeconds"
    if kind == "restart" and probe_grace is not None and probe_grace < best:
        best, source = probe_grace, "probe terminationGracePeriodSeconds"
    return best, source


def app_containers(facts: PodFacts, targets: Iterable[str]) -> list[str]:
    """The plan's targets, or every regular container but the sidecar's."""
    names = list(targets)
    return names or [n for n in facts.containers if n != SIDECAR_CONTAINER]


def app_stopped(facts: PodFacts, *, before: dict[str, str], targets: Iterable[str]) -> bool:
    """Has every app container that ran at the trigger stopped (or been replaced)?"""
    for name in app_containers(facts, targets):
        c = facts.containers.get(name)
        if c is not None and c.running and c.container_id == before.get(name, c.container_id):
            return False
    return True


def app_back(facts: PodFacts, *, before: dict[str, str], targets: Iterable[str]) -> bool:
    """Is every app container running and ready again, as a new container when it was killed?"""
    names = app_containers(facts, targets)
    if not names:
        return False
    for name in names:
        c = facts.containers.get(name)
        if c is None or not (c.running and c.ready):
            return False
        if name in before and c.container_id == before[name]:
            return False  # still the container that was killed
    return True
