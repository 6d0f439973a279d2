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


class WebhookMetrics:
    """The webhook's metrics, on the operator's registry."""

    def __init__(self, registry: prom.CollectorRegistry) -> None:
        self.admissions = prom.Counter(
            "quiesce_webhook_admissions",
            "Pod admissions, by result (injected, skipped, already, invalid, denied, ...).",
            ["result"],
            registry=registry,
        )
        self.latency = prom.Histogram(
            "quiesce_webhook_admission_seconds",
            "Time to answer one admission request, from its arrival to the response.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 3),
            registry=registry,
        )
        self.missed = prom.Counter(
            "quiesce_webhook_missed_pods",
            "Pods found created without the sidecar that the webhook never saw (it was down "
            "or unreachable: failurePolicy Ignore let them through). Each pod counted once.",
            registry=registry,
        )
        self.not_injected = prom.Gauge(
            "quiesce_webhook_pods_not_injected",
            "Pods running now that asked for quiesce but were created without the sidecar.",
            registry=registry,
        )
        self.cert_expiry = prom.Gauge(
            "quiesce_webhook_certificate_expiry_timestamp_seconds",
            "When the serving certificate in use expires (Unix time).",
            registry=registry,
        )
        self.cert_problems = prom.Counter(
            "quiesce_webhook_certificate_problems",
            "Checks that found the webhook's certificate unusable (expired, wrong key or host, "
            "not signed by the CA, missing).",
            registry=registry,
        )
        self.rotations = prom.Counter(
            "quiesce_webhook_certificate_rotations",
            "Serving certificates loaded after the first (renewals, other replicas' writes).",
            registry=registry,
        )
