"""Logging: kopf's own formatters, as text for humans or one JSON object per line.

kopf's JSON formatter carries the object reference (kind, namespace, name, uid)
of a line under ``object``, which is what a log pipeline needs to group lines by
workload. quiesce's per-object lines carry it (:func:`object_logger`) on quiesce's
own logger: kopf's per-object logger in watch handlers reports its records as
coming from kopf's source, and its INFO lines are kopf's chatter, silenced below.
The reference alone never makes a line an Event (kopf posts only records that
carry its settings).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("quiesce.operator")


def configure(log_format: str, *, verbose: bool = False) -> None:
    """Set up the root logger once, before kopf starts."""
    import kopf

    fmt = kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(
        verbose=verbose, log_format=fmt, log_refkey="object" if fmt is kopf.LogFormat.JSON else None
    )
    # The kubernetes client logs every retried connection at WARNING: keep it for real trouble.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    if not verbose:
        # kopf logs every handler call ("Handler ... succeeded") at INFO: one line per watch
        # event of every workload. quiesce logs its own decisions; keep kopf's trouble only.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def object_logger(obj: Mapping[str, Any]) -> logging.LoggerAdapter[logging.Logger]:
    """quiesce's logger, its lines carrying ``obj`` as kopf's per-object logger's do (the
    JSON formatter's ``object``)."""
    metadata = obj.get("metadata") or {}
    ref = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "namespace": metadata.get("namespace"),
    }
    return logging.LoggerAdapter(log, {"k8s_ref": ref})
