"""The JSON timeline of each shutdown sequence; ``/status`` serves the last one in full
and a bounded history of the ones before it.

One mutable record per sequence: each phase with its start, end (seconds since
the sequence started, and wall-clock time), outcome and details; which check
ended convergence; the Consul instances deregistered; every error and warning.
An operator reading ``/status`` (or the logs) must be able to tell why a pod
took as long as it did to stop.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["running", "ok", "failed", "skipped", "timeout"]

#: Joins ``/status`` lists (the latest); beyond them it only counts. Every
#: repeated ``/prestop`` joins, and 30,000 of them made a 1.1 MB ``/status``.
JOINS_KEPT = 10

#: Sequences ``/status`` summarises (the latest); a pod restarted a thousand times by its
#: probe must not grow the sidecar.
HISTORY_KEPT = 10
#: Undo steps one timeline keeps (a re-assert per re-registration could be many).
UNDID_KEPT = 20


@dataclass
class Phase:
    name: str
    started: float
    ended: float | None = None
    outcome: Outcome = "running"
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self, origin: float, wall_origin: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": round(self.started - origin, 3),
            "end": None if self.ended is None else round(self.ended - origin, 3),
            "started_at": _iso(wall_origin + self.started - origin),
            "ended_at": None if self.ended is None else _iso(wall_origin + self.ended - origin),
            "outcome": self.outcome,
            **self.detail,
        }


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"


class Timeline:
    """What happened in one sequence; times come from the monotonic clock."""

    def __init__(self, *, trigger: str) -> None:
        self.trigger = trigger
        self.origin = time.monotonic()
        self.wall_origin = time.time()
        self.ended: float | None = None
        self.state: Literal["running", "done"] = "running"
        self.deadline: float | None = None
        self.grace: dict[str, Any] = {}
        self.phases: list[Phase] = []
        self.joined: deque[dict[str, Any]] = deque(maxlen=JOINS_KEPT)
        self.joined_count = 0
        self.errors: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.classification: dict[str, str] = {}
        """The kind of kill (:mod:`quiesce.sidecar.trigger`) and why."""
        self.undid: deque[dict[str, Any]] = deque(maxlen=UNDID_KEPT)
        """What was undone after a restart (maintenance lifted, entries registered again)."""
        self.number = 0

    def begin(self, name: str, **detail: Any) -> Phase:
        phase = Phase(name=name, started=time.monotonic(), detail=dict(detail))
        self.phases.append(phase)
        return phase

    def end(self, phase: Phase, outcome: Outcome, **detail: Any) -> None:
        phase.ended = time.monotonic()
        phase.outcome = outcome
        phase.detail.update(detail)

    def error(self, phase: str, message: str, **detail: Any) -> None:
        self.errors.append({"phase": phase, "at": self.elapsed(), "error": message, **detail})

    def warn(self, phase: str, message: str, **detail: Any) -> None:
        self.warnings.append({"phase": phase, "at": self.elapsed(), "warning": message, **detail})

    def join(self, trigger: str) -> int:
        """Count one more join, keep the latest few; how many joins there were."""
        self.joined_count += 1
        self.joined.append({"trigger": trigger, "at": self.elapsed()})
        return self.joined_count

    def elapsed(self) -> float:
        return round(time.monotonic() - self.origin, 3)

    def finish(self) -> None:
        self.ended = time.monotonic()
        self.state = "done"

    def phase(self, name: str) -> Phase | None:
        for phase in self.phases:
            if phase.name == name:
                return phase
        return None

    @property
    def outcome(self) -> str:
        if self.state == "running":
            return "running"
        return "failed" if self.errors else "ok"

    def brief(self) -> dict[str, Any]:
        """One line of the history: trigger, kind, outcome and what was undone."""
        return {
            "sequence": self.number,
            "trigger": self.trigger,
            "kind": self.classification.get("kind"),
            "outcome": self.outcome,
            "started_at": _iso(self.wall_origin),
            "duration": None if self.ended is None else round(self.ended - self.origin, 3),
            "errors": len(self.errors),
            "event": (self.summary.get("event") or {}).get("result"),
            "undid": list(self.undid),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "sequence": self.number,
            "trigger": self.trigger,
            "classification": self.classification,
            "outcome": self.outcome,
            "undid": list(self.undid),
            "started_at": _iso(self.wall_origin),
            "duration": None if self.ended is None else round(self.ended - self.origin, 3),
            "deadline": None if self.deadline is None else round(self.deadline - self.origin, 3),
            "grace": self.grace,
            "joined_count": self.joined_count,
            "joined": list(self.joined),
            "phases": [p.as_json(self.origin, self.wall_origin) for p in self.phases],
            "errors": self.errors,
            "warnings": self.warnings,
            **self.summary,
        }
