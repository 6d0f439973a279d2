"""Running the operator: logging, the handler registry, and kopf, in one process.

kopf is run programmatically (``kopf.run``) with a registry of our own rather
than the module-level default one, so importing quiesce never registers
handlers as a side effect and tests can build an operator twice.
"""

from __future__ import annotations

import logging
import os

from quiesce.operator import handlers, logs
from quiesce.operator import runtime as runtime_
from quiesce.operator import settings as settings_

log = logging.getLogger("quiesce.operator")


def run(settings: settings_.OperatorSettings) -> int:
    """Run until SIGTERM/SIGINT; the exit status of ``quiesce operator``."""
    import kopf

    logs.configure(settings.log_format, verbose=settings.verbose)
    if settings.kubeconfig:
        # kopf's own login (kubernetes client piggybacking) reads $KUBECONFIG.
        os.environ["KUBECONFIG"] = settings.kubeconfig
    registry = kopf.OperatorRegistry()
    runtime = runtime_.Runtime(settings=settings)
    handlers.register(registry, runtime)
    if settings.webhook.enabled:
        from quiesce.operator import webhook

        webhook.register(registry, runtime)
    kopf.run(
        registry=registry,
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        standalone=settings.peering is None,
        peering_name=settings.peering,
        priority=settings.priority,
        liveness_endpoint=settings.liveness,
        memo=runtime,
    )
    return 0
