"""Logging: kopf's own formatters, as text for humans or one JSON object per line.

kopf's JSON formatter already carries the object reference (namespace, name)
of a handler's log lines, which is what a log pipeline needs to group them.
"""

from __future__ import annotations

import logging


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
