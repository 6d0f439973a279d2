"""Logging: kopf's own formatters, as text for humans or one JSON object per line.

kopf's JSON formatter carries the object reference (kind, namespace, name, uid)
of every line logged through its per-object logger (the ``logger`` a handler
gets) under ``object``, and the text formatter prefixes ``[namespace/name]``;
that is what a log pipeline needs to group lines by workload. quiesce's handlers
log through that logger, so their lines say which object they are about.
"""

from __future__ import annotations

import logging
import os


class _KopfChatter(logging.Filter):
    """Drops kopf's own per-object lines below WARNING ("Handler ... succeeded", one per
    watch event of every workload), keeping quiesce's lines on the same logger."""

    def __init__(self, package_dir: str) -> None:
        super().__init__()
        self.package_dir = package_dir

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.pathname.startswith(self.package_dir)


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
        # quiesce logs its own decisions on kopf's per-object logger ("kopf.objects"); of
        # kopf's own lines there, keep the trouble only.
        package_dir = os.path.dirname(kopf.__file__) + os.sep
        logging.getLogger("kopf.objects").addFilter(_KopfChatter(package_dir))
