"""Prometheus metrics of the sidecar, in a registry of its own.

Its own ``CollectorRegistry`` (not the process-global default) keeps tests
independent and the exposition limited to what quiesce promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PHASE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, float("inf"))


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.phase_duration = Histogram(
            "quiesce_sidecar_phase_duration_seconds",
            "Duration of each shutdown phase "
            "(deregister, converge, kept_hook, signal, drain, total).",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=r,
        )
        self.convergence = Counter(
            "quiesce_sidecar_convergence_total",
            "Sequences by the check that ended convergence (quiet, consul, endpointslices, "
            "floor, ceiling, deadline).",
            ["reason"],
            registry=r,
        )
        self.deregistrations = Counter(
            "quiesce_sidecar_deregistrations_total",
            "Consul instances taken out, by backend.",
            ["backend"],
            registry=r,
        )
        self.deregistration_failures = Counter(
            "quiesce_sidecar_deregistration_failures_total",
            "Failed Consul calls while deregistering (after retries).",
            ["backend"],
            registry=r,
        )
        self.connections_after_deregistration = Counter(
            "quiesce_sidecar_connections_after_deregistration_total",
            "New inbound connections seen after deregistration started.",
            registry=r,
        )
        self.prestop_requests = Counter(
            "quiesce_sidecar_prestop_requests_total",
            "Calls to /prestop by outcome (started, joined, forbidden).",
            ["outcome"],
            registry=r,
        )
        self.sequences = Counter(
            "quiesce_sidecar_sequences_total",
            "Shutdown sequences started, by trigger (prestop, sigterm).",
            ["trigger"],
            registry=r,
        )
        self.events = Counter(
            "quiesce_sidecar_events_total",
            "Events posted on the pod at the end of a sequence, by result (posted, failed, "
            "skipped).",
            ["result"],
            registry=r,
        )
        for result in ("posted", "failed", "skipped"):
            self.events.labels(result=result)  # at 0 from the start: a healthy run has data
        self.inbound_rate = Gauge(
            "quiesce_sidecar_inbound_rate",
            "Inbound connections and requests per second seen while idle (λ of the quiet window).",
            registry=r,
        )
        self.quiet_window = Gauge(
            "quiesce_sidecar_quiet_window_seconds",
            "The quiet window the last sequence used (adaptive: ln(1/ε)/λ).",
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
