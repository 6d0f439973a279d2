"""The kopf handlers: short, and only applying what :mod:`quiesce.operator.reconcile` decides.

Only ``@kopf.on.event`` handlers (and an index): kopf's create/update/resume
handlers keep their progress and a last-handled-configuration annotation on
the object, which would write to every workload and look like drift to GitOps
tools. Event handlers keep no state on objects, so retries are ours: a failed
write is retried with backoff from a fresh read of the object, which keeps the
operator level-triggered and never blocks other objects.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from quiesce import annotations as keys
from quiesce import template
from quiesce.operator import apply, logs, reconcile, resources
from quiesce.operator import runtime as runtime_

if TYPE_CHECKING:
    import kopf

log = logging.getLogger("quiesce.operator")

#: Seconds before the n-th retry of a failed write (the last one repeats).
RETRY_BACKOFF = (0.2, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: Native sidecars (init containers with restartPolicy Always) are on by default from 1.29.
NATIVE_SIDECARS_SINCE = (1, 29)
#: Objects per page of the initial list (and of every re-list after a watch expires).
LIST_PAGE = 500
#: Seconds a kopf per-object worker waits for the object's next event before it exits.
WORKER_IDLE = 0.5
_PAST = {
    "inject": "Injected",
    "update": "Updated",
    "upgrade": "Upgraded",
    "restore": "Restored",
    "status": "Wrote the status of",
    "forget": "Dropped the bookkeeping of",
    "none": "Left",
}


def register(registry: Any, runtime: runtime_.Runtime) -> None:
    """Register every handler on ``registry`` (a ``kopf.OperatorRegistry``)."""
    import kopf

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        await _startup(runtime, settings)

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf logs in with the operator's own client settings (--kubeconfig included).
        if runtime.client is None:
            runtime.client = await asyncio.to_thread(
                apply.Client.load, runtime.settings.kubeconfig, runtime.metrics
            )
        return kopf.ConnectionInfo(**runtime.api.connection_info())

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await runtime.queue.stop()
        for handle in runtime.retries.values():
            handle.cancel()
        if runtime.client is not None:
            runtime.client.close()

    # Core v1 named in full: a selector without a group ("namespaces") makes kopf
    # discover every API group of the cluster at start, so one unrelated aggregated API
    # that hangs or fails would delay or stall the whole operator.
    @kopf.index(
        "v1",
        "namespaces",
        labels={keys.DISABLED_LABEL: "true"},
        registry=registry,
        id="disabled_namespaces",
    )
    def disabled_namespaces(name: str, **_: Any) -> dict[str, bool]:
        # kopf fills indexes before it starts handlers: no workload of a switched-off
        # namespace is touched while the namespaces are still being listed.
        return {name: True}

    @kopf.index("v1", "namespaces", registry=registry, id="pod_security")
    def pod_security(name: str, labels: kopf.Labels, **_: Any) -> dict[str, str]:
        # An index, so the levels are known before the first workload is reconciled: a
        # signal-mode sidecar that needs root is refused under "restricted" rather than
        # injected into pods the API server would then reject.
        # Every namespace is in the index ("" when unlabelled): a workload whose namespace
        # is not in it yet is judged a moment later (workload_event).
        level = labels.get(template.POD_SECURITY_ENFORCE_LABEL)
        if level is None:
            runtime.pod_security.pop(name, None)
        else:
            runtime.pod_security[name] = level
        return {name: level or ""}

    @kopf.on.event("v1", "namespaces", registry=registry, id="namespaces")
    async def namespace_event(name: str, labels: kopf.Labels, **_: Any) -> None:
        await _namespace_changed(runtime, name, labels)

    def relevant(annotations: kopf.Annotations, **_: Any) -> bool:
        return reconcile.is_relevant(annotations)

    for kind in resources.WORKLOADS:
        kopf.on.event(
            kind.group, kind.version, kind.plural, when=relevant, registry=registry, id=kind.plural
        )(_workload_handler(runtime, kind))


def _workload_handler(runtime: runtime_.Runtime, kind: resources.Kind) -> Any:
    async def workload_event(
        *,
        type: str,
        body: kopf.Body,
        meta: kopf.Meta,
        disabled_namespaces: kopf.Index[str, bool],
        pod_security: kopf.Index[str, str],
        **_: Any,
    ) -> None:
        if type == "DELETED":
            runtime.queue.discard(str(meta.uid))
            _forget(runtime, str(meta.uid))
            return
        if runtime.settings.disabled or meta.namespace in disabled_namespaces:
            return
        if meta.namespace not in pod_security and str(meta.uid) not in runtime.retries:
            # A namespace created with its first workload: its Pod Security label may not
            # have reached the index yet. Judge the workload once more a second later (from
            # a fresh read; the retry does not wait again).
            _schedule(runtime, kind, str(meta.namespace), str(meta.name), str(meta.uid), 1.0)
            return
        # Filed, not reconciled here: kopf would hold every listed body until we return.
        runtime.queue.put(kind, str(meta.uid), body)

    return workload_event


async def _startup(runtime: runtime_.Runtime, settings: kopf.OperatorSettings) -> None:
    ours = runtime.settings
    settings.posting.level = logging.INFO
    settings.peering.mandatory = ours.peering is not None
    settings.peering.name = ours.peering or "default"
    settings.peering.priority = ours.priority
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    # The initial list in pages: one response of 10,000 workloads is hundreds of MiB
    # parsed, held at once (kopf keeps at most one page).
    settings.watching.chunk_size = LIST_PAGE
    # kopf's per-object worker keeps its last event until it idles out: handlers here
    # only file objects (workqueue.py), so let the bodies go soon.
    settings.queueing.idle_timeout = WORKER_IDLE
    settings.networking.request_timeout = 60
    if runtime.client is None:
        runtime.client = await asyncio.to_thread(
            apply.Client.load, ours.kubeconfig, runtime.metrics
        )
    major, minor = await asyncio.to_thread(runtime.api.server_version)
    if ours.cluster_sidecars == "auto":
        runtime.cluster_native = (major, minor) >= NATIVE_SIDECARS_SINCE
    else:
        runtime.cluster_native = ours.cluster_sidecars == "native"
    if ours.metrics_port:
        runtime.metrics.serve(ours.metrics_port)

    async def reconcile_filed(kind: resources.Kind, obj: dict[str, Any]) -> None:
        obj.setdefault("apiVersion", kind.api_version)
        obj.setdefault("kind", kind.kind)
        # Lines about the object carry it, as kopf's per-object logger's do (logs.py).
        await handle(runtime, kind, obj, logs.object_logger(obj))

    runtime.queue.start(runtime_.RECONCILERS_PER_WORKER * ours.workers, reconcile_filed)
    log.info(
        "quiesce operator started: Kubernetes %d.%d, %s sidecars by default, %s, config %s%s.",
        major,
        minor,
        "native" if runtime.cluster_native else "regular-container",
        "all namespaces" if ours.clusterwide else "namespaces " + ", ".join(ours.namespaces),
        ours.config_path or "(built-in defaults)",
        ", DRY RUN" if ours.dry_run else "",
    )


async def handle(
    runtime: runtime_.Runtime,
    kind: resources.Kind,
    obj: dict[str, Any],
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Reconcile one object: decide (pure), then write at most once; retry on conflicts."""
    uid = str(obj["metadata"].get("uid"))
    lock = runtime.locks.setdefault(uid, asyncio.Lock())
    async with lock:
        started = time.perf_counter()
        try:
            await _reconcile(runtime, kind, obj, logger)
        finally:
            runtime.metrics.latency.labels(kind.kind).observe(time.perf_counter() - started)


async def _reconcile(
    runtime: runtime_.Runtime,
    kind: resources.Kind,
    obj: dict[str, Any],
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    metadata = obj["metadata"]
    uid, namespace, name = str(metadata["uid"]), str(metadata["namespace"]), str(metadata["name"])
    if int(metadata.get("generation") or 0) < runtime.generations.get(uid, 0):
        # A watch event queued before our own write: its copy is stale, a newer one follows.
        return
    decision = reconcile.reconcile(
        obj,
        config=runtime.settings.config,
        cluster_native=runtime.cluster_native,
        new_token=template.generate_token(),
        pod_security=runtime.pod_security.get(namespace),
    )
    _track(runtime, kind, uid, obj, decision)
    if decision.errors:
        runtime.metrics.errors.labels(kind.kind, "invalid").inc()
    if decision.write is None:
        _cancel_retry(runtime, uid)
        return

    if runtime.settings.dry_run:
        for event in decision.events or (reconcile.Event("Normal", "StatusChanged", decision.why),):
            message = f"dry run, nothing written: would {decision.action}: {event.message}"
            key = f"{decision.action}:{event.message}"
            runtime.poster.post_once(obj, dataclasses.replace(event, message=message), key=key)
        return

    if decision.action == "upgrade":
        wait = runtime.upgrades.allow()
        if wait:
            logger.info("Auto-upgrade of %s/%s waits %.0f s (rate limit).", namespace, name, wait)
            _schedule(runtime, kind, namespace, name, uid, wait)
            return

    try:
        if decision.service_account and decision.changes_template:
            await _bind(runtime, namespace, decision.service_account)
        written = await runtime.call(runtime.api.write, kind, namespace, name, decision.write)
    except apply.ApiError as exc:
        if exc.status == 404:
            return
        runtime.metrics.errors.labels(kind.kind, f"api-{exc.status}").inc()
        attempt = runtime.attempts.get(uid, 0)
        # A JSON patch whose resourceVersion test failed (a concurrent change) is a 422 like
        # an invalid one: a fresh read tells them apart, so retry it a few times.
        stale = exc.status == 422 and decision.write.kind == "json-patch" and attempt < 3
        if exc.retriable or stale:
            runtime.attempts[uid] = attempt + 1
            delay = RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)]
            # A conflict is routine (a watch event older than the object): not worth a line.
            level = logging.DEBUG if exc.status in (409, 422) else logging.WARNING
            logger.log(
                level, "Writing %s/%s failed (%s); retrying in %.1f s.", namespace, name, exc, delay
            )
            _schedule(runtime, kind, namespace, name, uid, delay)
        else:
            logger.error("Writing %s/%s failed: %s; not retried.", namespace, name, exc)
            runtime.poster.post_once(
                obj,
                reconcile.Event(
                    "Warning", "WriteFailed", f"quiesce could not {decision.action}: {exc}"
                ),
                key=f"failed:{exc}",
            )
        return
    runtime.attempts.pop(uid, None)
    _cancel_retry(runtime, uid)
    runtime.generations[uid] = int((written.get("metadata") or {}).get("generation") or 0)
    runtime.metrics.writes.labels(kind.kind, decision.action).inc()
    if decision.action in ("inject", "update", "upgrade"):
        runtime.managed.add(uid, kind.kind)
    elif decision.action in ("restore", "forget"):
        runtime.managed.discard(uid)
    for event in decision.events:
        runtime.poster.post(obj, event)
    logger.info("%s %s/%s: %s.", _PAST[decision.action], namespace, name, decision.why)


async def _bind(runtime: runtime_.Runtime, namespace: str, service_account: str) -> None:
    """Bind the sidecar's service account; a failure never blocks the injection.

    Without the binding the sidecar skips its EndpointSlice check and reports it
    (design: "Sidecar RBAC"), so the pod still shuts down cleanly on Consul and quiet.
    """
    if (namespace, service_account) in runtime.bound:
        return
    try:
        await runtime.call(runtime.api.bind_service_account, namespace, service_account)
    except apply.ApiError as exc:
        if exc.retriable:
            raise
        log.warning(
            "Binding service account %s/%s to the ClusterRole quiesce-sidecar failed: %s; "
            "its sidecars will skip the EndpointSlice check.",
            namespace,
            service_account,
            exc,
        )
        runtime.metrics.errors.labels("RoleBinding", f"api-{exc.status}").inc()
    runtime.bound.add((namespace, service_account))


async def _namespace_changed(
    runtime: runtime_.Runtime, name: str, labels: Mapping[str, str]
) -> None:
    """Switching a namespace back on reconciles its workloads (nothing else would)."""
    disabled = labels.get(keys.DISABLED_LABEL) == "true"
    was = name in runtime.disabled_namespaces
    if disabled:
        runtime.disabled_namespaces.add(name)
        return
    runtime.disabled_namespaces.discard(name)
    if not was or runtime.client is None or runtime.settings.disabled:
        return
    log.info("Namespace %s is switched on again; reconciling its workloads.", name)
    for kind in resources.WORKLOADS:
        try:
            items = await runtime.call(runtime.api.list, kind, name)
        except apply.ApiError as exc:
            log.warning("Listing %s in %s failed: %s.", kind.plural, name, exc)
            continue
        for item in items:
            if reconcile.is_relevant(item["metadata"].get("annotations") or {}):
                await handle(runtime, kind, item, logs.object_logger(item))


def _schedule(
    runtime: runtime_.Runtime,
    kind: resources.Kind,
    namespace: str,
    name: str,
    uid: str,
    delay: float,
) -> None:
    """Reconcile the object again after ``delay`` seconds, from a fresh read."""
    _cancel_retry(runtime, uid)
    loop = asyncio.get_running_loop()

    def fire() -> None:
        runtime.retries.pop(uid, None)
        task = loop.create_task(_retry(runtime, kind, namespace, name))
        runtime.tasks.add(task)
        task.add_done_callback(runtime.tasks.discard)

    runtime.retries[uid] = loop.call_later(delay, fire)


async def _retry(
    runtime: runtime_.Runtime, kind: resources.Kind, namespace: str, name: str
) -> None:
    try:
        obj = await runtime.call(runtime.api.get, kind, namespace, name)
    except apply.ApiError as exc:
        if exc.status != 404:
            log.warning("Reading %s/%s for a retry failed: %s.", namespace, name, exc)
        return
    if runtime.settings.disabled or namespace in runtime.disabled_namespaces:
        return
    obj.setdefault("apiVersion", kind.api_version)
    obj.setdefault("kind", kind.kind)
    await handle(runtime, kind, obj, logs.object_logger(obj))


def _cancel_retry(runtime: runtime_.Runtime, uid: str) -> None:
    handle = runtime.retries.pop(uid, None)
    if handle is not None:
        handle.cancel()


def _track(
    runtime: runtime_.Runtime,
    kind: resources.Kind,
    uid: str,
    obj: Mapping[str, Any],
    decision: reconcile.Decision,
) -> None:
    annotations = obj["metadata"].get("annotations") or {}
    if decision.action == "none" and keys.STATE_REPLACED in annotations:
        runtime.managed.add(uid, kind.kind)


def _forget(runtime: runtime_.Runtime, uid: str) -> None:
    _cancel_retry(runtime, uid)
    runtime.locks.pop(uid, None)
    runtime.attempts.pop(uid, None)
    runtime.generations.pop(uid, None)
    runtime.poster.forget(uid)
    runtime.managed.discard(uid)
