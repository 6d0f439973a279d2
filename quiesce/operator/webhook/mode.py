"""Webhook mode of one operator process: the keeper, the server, the scan, the kopf handlers.

Registered on the operator's registry after :func:`quiesce.operator.handlers.register`
when ``--webhook`` is given; it shares the operator's :class:`~quiesce.operator.runtime.Runtime`
(client, metrics, switches) and never imports the template-mode handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from quiesce import annotations as keys
from quiesce import template
from quiesce.operator import apply, events, reconcile
from quiesce.operator import metrics as metrics_
from quiesce.operator import runtime as runtime_
from quiesce.operator import settings as settings_
from quiesce.operator.webhook import admission as admissions
from quiesce.operator.webhook import keeper, server

log = logging.getLogger("quiesce.operator.webhook")


class Webhook:
    """Webhook mode of one operator process: certificates, configuration, server, scan."""

    def __init__(self, runtime: runtime_.Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.metrics = metrics_.WebhookMetrics(runtime.metrics.registry)
        self.certificates = keeper.Certificates(
            runtime,
            self.metrics,
            hosts=admissions.webhook_hosts(self.settings),
            publish=self.publish,
        )
        self.server = server.Server(self)
        self.tasks: list[asyncio.Task[None]] = []
        self.seen_missed: set[str] = set()

    async def start(self) -> None:
        self.tasks.append(asyncio.create_task(self.certificates.run(), name="webhook certs"))
        if self.settings.webhook.scan_interval > 0 and not self.settings.dry_run:
            self.tasks.append(asyncio.create_task(self.scan_forever(), name="webhook scan"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def publish(self, ca_bundle: bytes) -> None:
        """Apply the MutatingWebhookConfiguration with this CA bundle (idempotent)."""
        body = admissions.configuration_body(self.settings, ca_bundle)
        await self.runtime.call(
            lambda: self.runtime.api.request(
                "PATCH",
                f"{admissions.CONFIG_PATH}/{self.settings.webhook.name}",
                body=body,
                content_type=apply.CONTENT_TYPES["apply"],
                query=[("fieldManager", settings_.FIELD_MANAGER), ("force", "true")],
            )
        )
        log.info(
            "Applied the MutatingWebhookConfiguration %s (failurePolicy %s, timeout %d s).",
            self.settings.webhook.name,
            self.settings.webhook.failure_policy,
            self.settings.webhook.timeout,
        )

    def admit(self, body: Mapping[str, Any], *, dryrun: bool) -> admissions.Admission:
        """The admission of one pod, with the operator's switches and scope applied."""
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        if self.settings.disabled or namespace in self.runtime.disabled_namespaces:
            admission = admissions.Admission("disabled")
        elif not admissions.in_scope(namespace, self.settings.namespaces):
            admission = admissions.Admission("out-of-scope")
        else:
            admission = admissions.admit(
                body,
                config=self.settings.config,
                cluster_native=self.runtime.cluster_native,
                token=template.generate_token(),
                strict=self.settings.webhook.strict,
                pod_security=self.runtime.pod_security.get(namespace),
            )
            if self.settings.dry_run and admission.result == "injected":
                admission = admissions.Admission(
                    "dry-run",
                    warnings=("quiesce (dry run): would inject the sidecar into this pod",),
                )
        self.metrics.admissions.labels(admission.result).inc()
        if admission.result in ("injected", "invalid", "denied"):
            meta = body.get("metadata") or {}
            name = meta.get("name") or f"{meta.get('generateName', '')}*"
            log.info(
                "Admission of pod %s/%s%s: %s.",
                namespace,
                name,
                " (server dry run)" if dryrun else "",
                admission.denial or "; ".join(admission.warnings) or admission.result,
            )
        return admission

    async def scan_forever(self) -> None:
        await self.certificates.ready.wait()
        while True:
            await asyncio.sleep(self.settings.webhook.scan_interval)
            try:
                await self.scan()
            except apply.ApiError as exc:
                log.warning("Scanning pods for missed injections failed: %s.", exc)
            except Exception:  # never let the scan die silently
                log.exception("Scanning pods for missed injections failed.")

    async def scan(self) -> list[dict[str, Any]]:
        """Pods of webhook namespaces created without the sidecar that the webhook never saw."""
        query = [("resourceVersion", "0")]
        selector = admissions.label_selector(self.settings)
        if selector:
            query.append(("labelSelector", selector))
        namespaces = await self.runtime.call(
            lambda: self.runtime.api.request("GET", "/api/v1/namespaces", query=query)
        )
        excluded = {*self.settings.webhook.exclude_namespaces, self.settings.operator_namespace}
        served = {
            ns["metadata"]["name"]
            for ns in namespaces.get("items") or ()
            if ns["metadata"]["name"] not in excluded
            and (ns["metadata"].get("labels") or {}).get(keys.DISABLED_LABEL) != "true"
            and admissions.in_scope(ns["metadata"]["name"], self.settings.namespaces)
        }
        found: list[dict[str, Any]] = []
        for namespace in sorted(served):
            pods = await self.runtime.call(
                lambda ns=namespace: self.runtime.api.request(
                    "GET", f"/api/v1/namespaces/{ns}/pods", query=[("resourceVersion", "0")]
                )
            )
            found.extend(pod for pod in pods.get("items") or () if admissions.missed(pod))
        self.metrics.not_injected.set(len(found))
        new = [pod for pod in found if pod["metadata"]["uid"] not in self.seen_missed]
        for pod in new:
            self.seen_missed.add(pod["metadata"]["uid"])
            self.metrics.missed.inc()
            pod.setdefault("apiVersion", "v1")
            pod.setdefault("kind", "Pod")
            await events.post_event(
                self.runtime,
                pod,
                reconcile.Event(
                    "Warning",
                    "NotInjected",
                    "quiesce.dev/inject is set but the pod was created without the quiesce "
                    "sidecar: the webhook was not reached (failurePolicy Ignore). Delete the "
                    "pod to have it re-created with the sidecar.",
                ),
            )
        if new:
            log.warning(
                "%d pod(s) were created without the quiesce sidecar while the webhook was not "
                "reached (%d such pods now): %s.",
                len(new),
                len(found),
                ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in new),
            )
        return found


def register(registry: Any, runtime: runtime_.Runtime) -> Webhook:
    """Add webhook mode to an operator registry (after :func:`handlers.register`)."""
    import kopf

    webhook = Webhook(runtime)

    @kopf.on.startup(registry=registry)
    async def webhook_startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = webhook.server
        settings.admission.managed = None  # quiesce applies its own configuration
        if runtime.client is None:
            runtime.client = await asyncio.to_thread(
                apply.Client.load, runtime.settings.kubeconfig, runtime.metrics
            )
        await webhook.start()

    @kopf.on.cleanup(registry=registry)
    async def webhook_cleanup(**_: Any) -> None:
        await webhook.stop()

    @kopf.on.mutate(
        "",
        "v1",
        "pods",
        operations=["CREATE"],
        id=admissions.HANDLER_ID,
        ignore_failures=True,
        side_effects=False,
        registry=registry,
    )
    # async: kopf runs plain functions in a thread pool, a hop each admission does not need.
    async def inject_pod(
        body: kopf.Body, patch: kopf.Patch, warnings: list[str], dryrun: bool, **_: Any
    ) -> None:
        # The Body is a read-only mapping over the request's object; the admission reads
        # it and never changes it (template.inject works on a copy).
        admission = webhook.admit(dict(body), dryrun=dryrun)
        warnings.extend(admission.warnings)
        if admission.denial is not None:
            raise kopf.AdmissionError(admission.denial, code=400)
        if admission.spec:
            patch["spec"] = admission.spec
        if admission.annotations:
            patch["metadata"] = {"annotations": admission.annotations}

    return webhook
