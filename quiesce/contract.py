"""The contract between the pod template and the sidecar, written once.

:mod:`quiesce.template` writes these into the pod (the sidecar's environment,
the app's ``preStop`` hook) and :mod:`quiesce.sidecar` reads them; both import
the names from here, so a rename cannot leave one side behind. The annotation
keys users write live beside this, in :mod:`quiesce.annotations`. Standard
library only: the lean sidecar imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# --- the app's preStop hook: the kubelet calls the sidecar -------------------------
#: Path of the sidecar's hook endpoint (``preStop: httpGet`` on every target container).
PRESTOP_PATH: Final = "/prestop"
#: Header carrying the per-workload token on the kubelet's ``/prestop`` call.
TOKEN_HEADER: Final = "X-Quiesce-Token"


def is_token_header(name: object) -> bool:
    """Header names are case-insensitive in HTTP: ``x-quiesce-token`` is ours too."""
    return str(name).lower() == TOKEN_HEADER.lower()


def is_our_hook(hook: Any) -> bool:
    """Is this preStop hook quiesce's: an ``httpGet`` carrying the token header?"""
    if not isinstance(hook, Mapping) or not isinstance(hook.get("httpGet"), Mapping):
        return False
    headers = hook["httpGet"].get("httpHeaders") or ()
    return any(isinstance(h, Mapping) and is_token_header(h.get("name", "")) for h in headers)


# --- the sidecar's environment, as the template writes it ---------------------------
#: The ShutdownPlan as JSON (:func:`quiesce.plan.codec.to_json`).
PLAN_ENV: Final = "QUIESCE_PLAN"
#: The value :data:`TOKEN_HEADER` must carry.
TOKEN_ENV: Final = "QUIESCE_TOKEN"
#: ``native`` (init container, restartPolicy Always) or ``container``.
SIDECAR_MODE_ENV: Final = "QUIESCE_SIDECAR_MODE"
#: ``json`` or ``text``.
LOG_FORMAT_ENV: Final = "QUIESCE_LOG_FORMAT"
# Downward API: who and where the pod is.
POD_NAME_ENV: Final = "POD_NAME"
POD_NAMESPACE_ENV: Final = "POD_NAMESPACE"
POD_UID_ENV: Final = "POD_UID"
POD_IP_ENV: Final = "POD_IP"
#: The node's address: the kubelet's source, and the default Consul agent's host.
HOST_IP_ENV: Final = "HOST_IP"
# Consul, in the names Consul's own CLI reads.
CONSUL_HTTP_ADDR_ENV: Final = "CONSUL_HTTP_ADDR"
CONSUL_HTTP_TOKEN_FILE_ENV: Final = "CONSUL_HTTP_TOKEN_FILE"
CONSUL_CACERT_ENV: Final = "CONSUL_CACERT"


# --- the Event the sidecar posts on its pod at the end of every sequence -----------
# ``quiesce status`` reads these Events back: both sides take the names from here.
#: ``source.component`` of the Event (``kubectl get events --field-selector source=...``).
EVENT_SOURCE: Final = "quiesce-sidecar"
#: ``reportingComponent`` of the Event.
EVENT_REPORTER: Final = "quiesce.dev/sidecar"
#: ``Normal``: the load balancers let go on their checks; the app was stopped as planned.
EVENT_QUIESCED: Final = "Quiesced"
#: ``Warning``: convergence ended on the ceiling or the deadline, not on its checks.
EVENT_TIMEOUT: Final = "QuiesceTimeout"
#: ``Warning``: a phase failed (Consul, the signal, the kept hook...): see ``/status``.
EVENT_FAILED: Final = "QuiesceFailed"
EVENT_REASONS: Final = (EVENT_QUIESCED, EVENT_TIMEOUT, EVENT_FAILED)
#: Annotation on the Event: the termination's facts as JSON, for ``quiesce status``.
EVENT_FACTS_ANNOTATION: Final = "state.quiesce.dev/termination"
