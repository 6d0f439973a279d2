"""Posting Kubernetes Events on workloads, through kopf's poster (batched, retried).

Events are how a user running ``kubectl describe`` learns what quiesce did or
refused. Each write posts its events once; reports that are not tied to a
write (dry run) are de-duplicated in memory so a busy object does not flood
its namespace with the same Event.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from quiesce.operator import apply, reconcile
from quiesce.operator import metrics as metrics_

if TYPE_CHECKING:
    from quiesce.operator import runtime as runtime_

log = logging.getLogger("quiesce.operator")


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


async def post_event(
    runtime: runtime_.Runtime, obj: Mapping[str, Any], event: reconcile.Event
) -> None:
    """Post an Event through the API directly: kopf's poster only works inside its own
    per-object tasks (its queue is a context variable), and these come from background ones."""
    metadata = obj.get("metadata") or {}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    namespace = str(metadata.get("namespace") or "default")
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata.get('name', 'quiesce')}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": metadata.get("name"),
            "namespace": namespace,
            "uid": metadata.get("uid"),
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "source": {"component": "quiesce"},
        "reportingComponent": "quiesce",
        "reportingInstance": "quiesce-operator",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await runtime.call(
            lambda: runtime.api.request("POST", f"/api/v1/namespaces/{namespace}/events", body=body)
        )
    except apply.ApiError as exc:
        log.warning("Posting the %s Event failed: %s.", event.reason, exc)
        return
    runtime.metrics.events.labels(event.type).inc()
