"""The traffic sampler: reads the socket table for the sidecar's whole life.

While idle it samples every ``idle_sample_interval`` and feeds λ, the inbound
rate behind the adaptive quiet window; once a sequence hands it a
:class:`~quiesce.sidecar.quiet.QuietTracker` it samples every
``poll_interval`` and feeds the tracker instead. A resource with an explicit
lifecycle (``start`` / ``close``), as aiohttp's ``cleanup_ctx`` expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.quiet import QuietTracker, RateEstimator, TrafficObserver

# the sequence's logger, as before the sampler had a module of its own: log filters keep working
log = logging.getLogger("quiesce.sidecar.sequence")


class Sampler:
    """Samples the socket table: to the rate estimator while idle, to a tracker in a sequence."""

    def __init__(
        self,
        observer: TrafficObserver,
        *,
        metrics: Metrics,
        idle_interval: float,
        busy_interval: float,
    ) -> None:
        self.observer = observer
        self.metrics = metrics
        self.idle_interval = idle_interval
        self.busy_interval = busy_interval
        self.estimator = RateEstimator()
        self.error: str | None = None
        """Why the socket table could not be read at the last sample; None when it could."""
        self._tracker: QuietTracker | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._sample_forever(), name="quiesce-sampler")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def track(self, tracker: QuietTracker) -> None:
        """Feed ``tracker`` from now on, and sample fast."""
        self._tracker = tracker
        self._wake.set()

    def untrack(self) -> None:
        """Back to idle sampling for the rate."""
        self._tracker = None

    async def _sample_forever(self) -> None:
        while not self._closing:
            await self.sample_once()
            interval = self.busy_interval if self._tracker is not None else self.idle_interval
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()

    async def sample_once(self) -> None:
        """One sample, to the rate estimator while idle or to the quiet tracker in a sequence.

        Serialised: the observer diffs each sample against the previous one.
        """
        async with self._lock:
            tracker = self._tracker
            try:
                activity = await self.observer.asample()
            except (OSError, ValueError, IndexError, TimeoutError) as exc:
                if self.error is None:
                    log.error(
                        "Cannot read the socket table (inet_diag): %s; the quiet check is "
                        "unavailable and convergence waits for its ceiling.",
                        exc,
                    )
                self.error = f"{type(exc).__name__}: {exc}"
                return
            self.error = None
            if tracker is not None:
                tracker.add(activity)
                seen = activity.new_connections + activity.unseen_opens
                if seen:
                    self.metrics.connections_after_deregistration.inc(seen)
            else:
                self.estimator.add(activity)
                self.metrics.inbound_rate.set(self.estimator.rate(activity.at))
