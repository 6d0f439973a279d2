"""Posting Kubernetes Events on workloads, through kopf's poster (batched, retried).

Events are how a user running ``kubectl describe`` learns what quiesce did or
refused. Each write posts its events once; reports that are not tied to a
write (dry run) are de-duplicated in memory so a busy object does not flood
its namespace with the same Event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from quiesce.operator import metrics as metrics_
from quiesce.operator import reconcile


class Poster:
    """Posts :class:`reconcile.Event` values and remembers what was reported."""

    def __init__(self, metrics: metrics_.Metrics) -> None:
        self.metrics = metrics
        self._reported: dict[str, str] = {}

    def post(self, obj: Mapping[str, Any], event: reconcile.Event) -> None:
        import kopf

        ref = {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "metadata": {
                key: (obj.get("metadata") or {}).get(key) for key in ("name", "namespace", "uid")
            },
        }
        kopf.event(cast(Any, ref), type=event.type, reason=event.reason, message=event.message)
        self.metrics.events.labels(event.type).inc()

    def post_once(self, obj: Mapping[str, Any], event: reconcile.Event, *, key: str) -> bool:
        """Post unless the same ``key`` was the last report on this object; True if posted."""
        uid = str((obj.get("metadata") or {}).get("uid"))
        if self._reported.get(uid) == key:
            return False
        self._reported[uid] = key
        self.post(obj, event)
        return True

    def forget(self, uid: str) -> None:
        self._reported.pop(uid, None)
