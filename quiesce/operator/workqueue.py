"""The operator's work queue: one pending entry per workload, its newest copy, compact.

kopf hands every watch event to its handler as it arrives, and keeps the event's
body until the handler returns. Reconciling inside the handler means that an
install over 10,000 existing workloads holds 10,000 parsed bodies (about 25 KiB
each) while 8 writers work through them: over a GiB at peak. So the handler only
files the object here and returns, as a controller-runtime reconciler's event
handler files a key in its workqueue:

* one entry per uid, level-triggered: a newer event replaces the pending copy
  (its place in the line is kept), so a burst of events costs one reconcile;
* the copy is what the decision reads, as compact JSON bytes (about a fifth of
  the parsed size): the status and the managedFields of non-Apply writers, which
  no decision reads, are left out;
* a fixed pool of workers takes entries in arrival order.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from quiesce.operator import resources

log = logging.getLogger(__name__)

Reconcile = Callable[[resources.Kind, dict[str, Any]], Awaitable[None]]


def compact(obj: Mapping[str, Any]) -> bytes:
    """The object as the decision needs it, serialised: no status, only Apply owners."""
    slim = {key: value for key, value in obj.items() if key != "status"}
    metadata = dict(slim.get("metadata") or {})
    owners = metadata.get("managedFields")
    if owners:
        applied = [e for e in owners if isinstance(e, Mapping) and e.get("operation") == "Apply"]
        if applied:
            metadata["managedFields"] = applied
        else:
            metadata.pop("managedFields")
    slim["metadata"] = metadata
    return json.dumps(slim, separators=(",", ":")).encode()


class WorkQueue:
    """Pending workloads by uid, drained by ``workers`` tasks calling ``reconcile``."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[resources.Kind, bytes]] = {}
        self._ready = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._pool: tuple[int, Reconcile] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, kind: resources.Kind, uid: str, obj: Mapping[str, Any]) -> None:
        self._pending[uid] = (kind, compact(obj))
        self._ready.set()
        if self._pool is not None and not self._workers:
            self._spawn(*self._pool)

    def discard(self, uid: str) -> None:
        """A deleted workload: nothing left to reconcile."""
        self._pending.pop(uid, None)

    async def get(self) -> tuple[resources.Kind, dict[str, Any]]:
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        uid = next(iter(self._pending))
        kind, data = self._pending.pop(uid)
        obj: dict[str, Any] = json.loads(data)
        return kind, obj

    def start(self, workers: int, reconcile: Reconcile) -> None:
        """Run ``workers`` reconcilers, from the first :meth:`put` on.

        Started by a put, they run in a copy of the context of kopf's handler that
        filed it: kopf's Event poster is found through a context variable of it.
        """
        self._pool = (workers, reconcile)

    def _spawn(self, workers: int, reconcile: Reconcile) -> None:
        async def work() -> None:
            while True:
                kind, obj = await self.get()
                try:
                    await reconcile(kind, obj)
                except Exception:  # one object's bug must not stop the others
                    meta = obj.get("metadata") or {}
                    log.exception(
                        "Reconciling %s %s/%s failed.",
                        kind.kind,
                        meta.get("namespace"),
                        meta.get("name"),
                    )

        self._workers = [
            asyncio.create_task(work(), name=f"quiesce-reconcile-{i}") for i in range(workers)
        ]

    async def stop(self) -> None:
        self._pool = None
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
