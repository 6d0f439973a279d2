"""Operator-wide state, shared by template mode and webhook mode (kopf's ``memo``).

Its own module so that the webhook and the handlers both depend on it and not
on each other: the client, the metrics, the caches and the retry bookkeeping
of one operator process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any, TypeVar

import prometheus_client as prom

from quiesce.operator import apply, events, resources, workqueue
from quiesce.operator import metrics as metrics_
from quiesce.operator import settings as settings_

T = TypeVar("T")

#: Reconcilers per write worker: one decides while another waits for its write.
RECONCILERS_PER_WORKER = 2


class RateLimiter:
    """A token bucket: at most ``per_minute`` actions a minute, bursts of at most one minute's."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()

    def allow(self) -> float:
        """0 when allowed now (a token is taken), else the seconds until one is available."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else 3600.0


class Managed:
    """The workloads quiesce has injected, by uid, with their gauge kept in step.

    Counted as they come and go, not recounted: a recount on every change costs
    O(N) per write, so O(N^2) CPU for an install over N existing workloads.
    """

    def __init__(self, gauge: prom.Gauge) -> None:
        self._kinds: dict[str, str] = {}
        self._gauge = gauge
        for kind in resources.WORKLOADS:  # every kind exported, at 0 before any write
            gauge.labels(kind.kind).set(0)

    def __contains__(self, uid: object) -> bool:
        return uid in self._kinds

    def add(self, uid: str, kind: str) -> None:
        if self._kinds.get(uid) == kind:
            return
        self.discard(uid)
        self._kinds[uid] = kind
        self._gauge.labels(kind).inc()

    def discard(self, uid: str) -> None:
        kind = self._kinds.pop(uid, None)
        if kind is not None:
            self._gauge.labels(kind).dec()


@dataclasses.dataclass
class Runtime:
    """Operator-wide state (kopf's ``memo``): the client, caches, retries."""

    settings: settings_.OperatorSettings
    metrics: metrics_.Metrics = dataclasses.field(default_factory=metrics_.Metrics)
    client: apply.Client | None = None
    cluster_native: bool = True
    poster: events.Poster = dataclasses.field(init=False)
    upgrades: RateLimiter = dataclasses.field(init=False)
    locks: dict[str, asyncio.Lock] = dataclasses.field(default_factory=dict)
    attempts: dict[str, int] = dataclasses.field(default_factory=dict)
    retries: dict[str, asyncio.TimerHandle] = dataclasses.field(default_factory=dict)
    managed: Managed = dataclasses.field(init=False)
    generations: dict[str, int] = dataclasses.field(default_factory=dict)
    bound: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    disabled_namespaces: set[str] = dataclasses.field(default_factory=set)
    #: Each namespace's enforced Pod Security level (its pod-security.kubernetes.io/enforce
    #: label), filled by an index before any handler runs.
    pod_security: dict[str, str] = dataclasses.field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)
    semaphore: asyncio.Semaphore | None = None
    queue: workqueue.WorkQueue = dataclasses.field(default_factory=workqueue.WorkQueue)

    def __post_init__(self) -> None:
        self.poster = events.Poster(self.metrics)
        self.managed = Managed(self.metrics.managed)
        self.upgrades = RateLimiter(self.settings.upgrades_per_minute)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking client call in a worker thread, at most ``workers`` at once."""
        if self.semaphore is None:
            self.semaphore = asyncio.Semaphore(self.settings.workers)
        async with self.semaphore:
            return await asyncio.to_thread(fn, *args)

    @property
    def api(self) -> apply.Client:
        if self.client is None:
            raise RuntimeError("the API client is made at startup")
        return self.client
