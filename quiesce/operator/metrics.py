"""The operator's Prometheus metrics, on a registry of its own (no process-global state).

What an on-call engineer asks of an injector: how many workloads does it manage,
how often does it write (a rollout storm shows here first), what fails, and how
long one reconciliation takes.
"""

from __future__ import annotations

import dataclasses

import prometheus_client as prom


@dataclasses.dataclass
class Metrics:
    """All metrics of one operator process."""

    registry: prom.CollectorRegistry = dataclasses.field(default_factory=prom.CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.managed = prom.Gauge(
            "quiesce_operator_objects_managed",
            "Workloads currently injected, by kind.",
            ["kind"],
            registry=r,
        )
        self.writes = prom.Counter(
            "quiesce_operator_patches",
            "Writes to workloads, by kind and action (inject, update, upgrade, restore, status).",
            ["kind", "action"],
            registry=r,
        )
        self.errors = prom.Counter(
            "quiesce_operator_errors",
            "Reconciliations that failed: invalid annotations or API errors.",
            ["kind", "reason"],
            registry=r,
        )
        self.requests = prom.Counter(
            "quiesce_operator_api_requests",
            "Requests quiesce itself sent to the API server (kopf's watches not included).",
            ["verb"],
            registry=r,
        )
        self.events = prom.Counter(
            "quiesce_operator_events", "Kubernetes Events posted, by type.", ["type"], registry=r
        )
        self.latency = prom.Histogram(
            "quiesce_operator_reconcile_seconds",
            "Time of one reconciliation, its write included.",
            ["kind"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on a daemon thread (prometheus-client's own server)."""
        prom.start_http_server(port, addr=address, registry=self.registry)

    def text(self) -> str:
        return prom.generate_latest(self.registry).decode()
