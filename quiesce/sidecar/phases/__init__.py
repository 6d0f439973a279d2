"""The phases of the shutdown sequence, one module each, in the order they run.

- :mod:`.deregister`  leave Consul (maintenance, then deregistration)
- :mod:`.converge`    wait until the load balancers have let go
- :mod:`.stop`        call the app's kept preStop hook, then signal the app
- :mod:`.drain`       hold the hook while requests are in flight or the app exits

Each phase is a function of the timeline, the deadline and the dependencies
it needs; it records itself in the timeline and returns what later phases
need. :class:`quiesce.sidecar.sequence.Sidecar` calls them in order.
"""

from __future__ import annotations

import logging

from quiesce.sidecar.metrics import Metrics
from quiesce.sidecar.status import Timeline

LOGGER = "quiesce.sidecar.sequence"
"""One logger for the whole sequence, as before the phases had modules: log filters keep working."""

log = logging.getLogger(LOGGER)


def record_duration(tl: Timeline, name: str, metrics: Metrics) -> None:
    """The phase's duration into ``quiesce_sidecar_phase_duration_seconds``, once it ended."""
    phase = tl.phase(name)
    if phase is not None and phase.ended is not None:
        metrics.phase_duration.labels(phase=name).observe(phase.ended - phase.started)
