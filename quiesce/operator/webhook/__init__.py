"""Webhook mode: a Pod mutating admission webhook (kopf) that injects with the same builder.

Template mode rewrites workloads that teams keep in Git; webhook mode leaves
them alone and injects into each Pod as it is created, from the
``quiesce.dev/*`` annotations on the pod (its template's), through the very
same :func:`quiesce.template.inject`. Pods no workload owns (bare pods, Jobs,
other operators' pods) are covered too.

Choices (``docs/webhook.md`` says why at length):

- The MutatingWebhookConfiguration is written by the operator (server-side
  apply, field manager ``quiesce``), not by kopf (whose managed configuration
  has a fixed 30 s timeout, no namespaceSelector and is removed when any
  replica stops) and not by the chart (the ``caBundle`` changes when the
  operator rotates its CA; the chart would need cert-manager's cainjector).
- ``failurePolicy: Ignore``, ``timeoutSeconds: 3``, ``sideEffects: None``,
  ``reinvocationPolicy: IfNeeded`` (a later webhook, say a policy engine,
  that adds ``quiesce.dev/inject`` gets the pod injected; injection is
  idempotent, so reinvocation of an injected pod changes nothing).
- Namespaces: opt-in by label, never kube-system or the operator's own, never
  a namespace switched off with ``quiesce.dev/disabled=true``.
- Our own HTTPS server in kopf's admission slot: its TLS context is reloaded
  in place when the certificate rotates (kopf's server restarts its listener,
  which refuses admissions for a moment), so rotation drops none.
- A pod created while no replica answered is created without the sidecar
  (fail-open); a periodic scan counts and reports such pods (metric, log line,
  Warning Event ``NotInjected`` on the pod).

The package, one concept per module:

- :mod:`~quiesce.operator.webhook.admission`  pure: a pod in, the admission out; the
  MutatingWebhookConfiguration
- :mod:`~quiesce.operator.webhook.keeper`     the serving certificate, in step with its Secret
- :mod:`~quiesce.operator.webhook.server`     the HTTPS server in kopf's admission slot
- :mod:`~quiesce.operator.webhook.mode`       the mode on the operator: handlers, the scan
"""

from __future__ import annotations

from typing import Any

# The pure part is what most callers (and the tests) need: imported eagerly. The rest
# (ssl, cryptography, the keeper and the server) only when webhook mode runs.
from quiesce.operator.webhook.admission import (
    CONFIG_PATH,
    HANDLER_ID,
    NAME_LABEL,
    WEBHOOK_NAME,
    Admission,
    Result,
    admit,
    client_config,
    configuration_body,
    in_scope,
    label_selector,
    missed,
    namespace_selector,
    webhook_hosts,
)

__all__ = [
    "CA_SETTLE_SECONDS",
    "CONFIG_PATH",
    "HANDLER_ID",
    "NAME_LABEL",
    "WEBHOOK_NAME",
    "Admission",
    "Certificates",
    "Result",
    "Server",
    "Webhook",
    "admit",
    "client_config",
    "configuration_body",
    "in_scope",
    "label_selector",
    "missed",
    "namespace_selector",
    "register",
    "webhook_hosts",
]

_LAZY = {
    "CA_SETTLE_SECONDS": "keeper",
    "Certificates": "keeper",
    "Server": "server",
    "Webhook": "mode",
    "register": "mode",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
