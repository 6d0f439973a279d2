"""Webhook mode: a Pod mutating admission webhook (kopf) that injects with the same builder.

Template mode rewrites workloads that teams keep in Git; webhook mode leaves
them alone and injects into each Pod as it is created, from the
``quiesce.dev/*`` annotations on the pod (its template's), through the very
same :func:`quiesce.template.inject`. Pods no workload owns (bare pods, Jobs,
other operators' pods) are covered too.

Choices (``docs/webhook.md`` says why at length):

- The MutatingWebhookConfiguration is written by the operator (server-side
  apply, field manager ``quiesce``), not by kopf (whose managed configuration
  has a fixed 30 s timeout, no namespaceSelector and is removed when any
  replica stops) and not by the chart (the ``caBundle`` changes when the
  operator rotates its CA; the chart would need cert-manager's cainjector).
- ``failurePolicy: Ignore``, ``timeoutSeconds: 3``, ``sideEffects: None``,
  ``reinvocationPolicy: IfNeeded`` (a later webhook, say a policy engine,
  that adds ``quiesce.dev/inject`` gets the pod injected; injection is
  idempotent, so reinvocation of an injected pod changes nothing).
- Namespaces: opt-in by label, never kube-system or the operator's own, never
  a namespace switched off with ``quiesce.dev/disabled=true``.
- Our own HTTPS server in kopf's admission slot: its TLS context is reloaded
  in place when the certificate rotates (kopf's server restarts its listener,
  which refuses admissions for a moment), so rotation drops none.
- A pod created while no replica answered is created without the sidecar
  (fail-open); a periodic scan counts and reports such pods (metric, log line,
  Warning Event ``NotInjected`` on the pod).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import fnmatch
import json
import logging
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, Literal

import prometheus_client as prom

from quiesce import annotations as keys
from quiesce import config as configuration
from quiesce import plan as plans
from quiesce import template
from quiesce.operator import apply, certificates, handlers, reconcile
from quiesce.operator import settings as settings_

log = logging.getLogger("quiesce.operator.webhook")

HANDLER_ID: Final = "inject"
WEBHOOK_NAME: Final = "pods.quiesce.dev"
CONFIG_PATH: Final = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
NAME_LABEL: Final = "kubernetes.io/metadata.name"
#: After a new CA is published, wait this long before serving a certificate it signed:
#: API servers pick up the new caBundle from their informer within about a second.
CA_SETTLE_SECONDS: Final = 3.0

Result = Literal[
    "injected", "skipped", "already", "invalid", "denied", "disabled", "out-of-scope", "dry-run"
]


# --- the pure part ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Admission:
    """What the webhook does with one pod: spec fields and annotations to set, warnings,
    a denial (strict mode only), and the result for metrics and logs."""

    result: Result
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    denial: str | None = None


def admit(
    pod: Mapping[str, Any],
    *,
    config: configuration.Config,
    cluster_native: bool,
    token: str,
    strict: bool = False,
) -> Admission:
    """The admission of one Pod CREATE: inject as template mode would, or say why not.

    Idempotent: a pod that already carries the sidecar (its workload was injected in
    template mode, or this is a reinvocation) is left alone.
    """
    metadata: Mapping[str, Any] = pod.get("metadata") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    if not reconcile.wants_injection(annotations):
        return Admission("skipped")
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return Admission("skipped")
    if template.is_injected(spec):
        return Admission("already")
    errors: list[str] = []
    try:
        written = _as_written(pod, spec)
        plan = plans.build_plan(annotations, written, config.plan)
        native = template.resolve_native(plan, cluster_supports_native=cluster_native)
        injection = template.inject(spec, plan, config, token=token, native=native)
    except plans.PlanError as exc:
        errors.extend(str(error) for error in exc.errors)
    except template.InjectionError as exc:
        errors.append(str(exc))
    if errors:
        listing = "; ".join(errors)
        if strict:
            return Admission(
                "denied",
                denial=f"quiesce (strict mode) refused the pod: {listing}",
            )
        return Admission(
            "invalid",
            annotations={keys.STATE_STATUS: reconcile.ERROR_PREFIX + listing},
            warnings=tuple(
                f"quiesce: the pod is created without its sidecar: {error}" for error in errors
            ),
        )
    changed = {key: value for key, value in injection.pod_spec.items() if spec.get(key) != value}
    # The plan hash serialises the plan (dataclasses.asdict, ~0.3 ms): once per admission,
    # so the status is reconcile.ok_status's text built here (a test pins them equal).
    plan_hash = plan.plan_hash()
    mode = "native" if native else "container"
    status = (
        f"{reconcile.OK_PREFIX}injected plan {plan_hash}, grace {plan.grace_period_seconds}s, "
        f"{mode} sidecar"
    )
    return Admission(
        "injected",
        spec=changed,
        annotations={keys.STATE_STATUS: status, keys.STATE_PLAN_HASH: plan_hash},
    )


def _as_written(pod: Mapping[str, Any], spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """The spec without a terminationGracePeriodSeconds the API server defaulted (30 s).

    Known only when the pod itself was applied (``kubectl apply``'s last-applied
    configuration, or server-side appliers' field ownership); otherwise 30 s counts as
    the user's, the safe side (a longer grace), as in template mode.
    """
    if spec.get(reconcile.GRACE) != reconcile.DEFAULT_GRACE:
        return spec
    metadata = pod.get("metadata") or {}
    defaulted = False
    raw = (metadata.get("annotations") or {}).get(reconcile.LAST_APPLIED)
    if isinstance(raw, str):
        try:
            written = json.loads(raw)
        except ValueError:
            written = None
        if isinstance(written, Mapping) and isinstance(written.get("spec"), Mapping):
            defaulted = reconcile.GRACE not in written["spec"]
    else:
        applied = [
            entry.get("fieldsV1") or {}
            for entry in metadata.get("managedFields") or ()
            if isinstance(entry, Mapping) and entry.get("operation") == "Apply"
        ]
        defaulted = bool(applied) and not any(
            f"f:{reconcile.GRACE}" in (fields.get("f:spec") or {}) for fields in applied
        )
    if not defaulted:
        return spec
    return {key: value for key, value in spec.items() if key != reconcile.GRACE}


def in_scope(namespace: str, patterns: tuple[str, ...]) -> bool:
    """Does the operator's ``--namespace`` scope (kopf globs, ``!`` negations) cover it?"""
    if not patterns:
        return True
    positive = [p for p in patterns if not p.startswith("!")]
    if any(fnmatch.fnmatchcase(namespace, p[1:]) for p in patterns if p.startswith("!")):
        return False
    return not positive or any(fnmatch.fnmatchcase(namespace, p) for p in positive)


def namespace_selector(settings: settings_.OperatorSettings) -> dict[str, Any]:
    """Which namespaces the API server sends to the webhook at all."""
    excluded = sorted({*settings.webhook_exclude_namespaces, settings.operator_namespace})
    expressions: list[dict[str, Any]] = [
        {"key": NAME_LABEL, "operator": "NotIn", "values": excluded},
        {"key": keys.DISABLED_LABEL, "operator": "NotIn", "values": ["true"]},
    ]
    label = settings.webhook_namespace_label.strip()
    if label:
        key, sep, value = label.partition("=")
        if sep:
            expressions.append({"key": key, "operator": "In", "values": [value]})
        else:
            expressions.append({"key": key, "operator": "Exists"})
    exact = [p for p in settings.namespaces if not any(c in p for c in "*?[!")]
    if settings.namespaces and len(exact) == len(settings.namespaces):
        expressions.append({"key": NAME_LABEL, "operator": "In", "values": sorted(exact)})
    return {"matchExpressions": expressions}


def label_selector(settings: settings_.OperatorSettings) -> str:
    """The namespace label as a list selector ("" = every namespace)."""
    return settings.webhook_namespace_label.strip()


def client_config(settings: settings_.OperatorSettings, ca_bundle: bytes) -> dict[str, Any]:
    config: dict[str, Any]
    if settings.webhook_url:
        config = {"url": settings.webhook_url.rstrip("/") + "/" + HANDLER_ID}
    else:
        where, _, port = settings.webhook_service.partition(":")
        namespace, _, name = where.partition("/")
        config = {
            "service": {
                "namespace": namespace,
                "name": name,
                "path": "/" + HANDLER_ID,
                "port": int(port or 443),
            }
        }
    config["caBundle"] = base64.b64encode(ca_bundle).decode("ascii")
    return config


def configuration_body(settings: settings_.OperatorSettings, ca_bundle: bytes) -> dict[str, Any]:
    """The MutatingWebhookConfiguration, as quiesce applies it."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": settings.webhook_name,
            "labels": {"app.kubernetes.io/managed-by": "quiesce"},
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "clientConfig": client_config(settings, ca_bundle),
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": settings.webhook_failure_policy,
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": settings.webhook_timeout,
                "reinvocationPolicy": settings.webhook_reinvocation,
                "namespaceSelector": namespace_selector(settings),
                "objectSelector": {},
            }
        ],
    }


def missed(pod: Mapping[str, Any]) -> bool:
    """A pod that asked for quiesce, has no sidecar, and that the webhook never saw
    (it marks every pod it admits with ``state.quiesce.dev/status``)."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if not reconcile.wants_injection(annotations) or keys.STATE_STATUS in annotations:
        return False
    if metadata.get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return not template.is_injected(pod.get("spec") or {})


# --- metrics ---------------------------------------------------------------------------


class WebhookMetrics:
    """The webhook's metrics, on the operator's registry."""

    def __init__(self, registry: prom.CollectorRegistry) -> None:
        self.admissions = prom.Counter(
            "quiesce_webhook_admissions",
            "Pod admissions, by result (injected, skipped, already, invalid, denied, ...).",
            ["result"],
            registry=registry,
        )
        self.latency = prom.Histogram(
            "quiesce_webhook_admission_seconds",
            "Time to answer one admission request, from its arrival to the response.",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 3),
            registry=registry,
        )
        self.missed = prom.Counter(
            "quiesce_webhook_missed_pods",
            "Pods found created without the sidecar that the webhook never saw (it was down "
            "or unreachable: failurePolicy Ignore let them through). Each pod counted once.",
            registry=registry,
        )
        self.not_injected = prom.Gauge(
            "quiesce_webhook_pods_not_injected",
            "Pods running now that asked for quiesce but were created without the sidecar.",
            registry=registry,
        )
        self.cert_expiry = prom.Gauge(
            "quiesce_webhook_certificate_expiry_timestamp_seconds",
            "When the serving certificate in use expires (Unix time).",
            registry=registry,
        )
        self.cert_problems = prom.Counter(
            "quiesce_webhook_certificate_problems",
            "Checks that found the webhook's certificate unusable (expired, wrong key or host, "
            "not signed by the CA, missing).",
            registry=registry,
        )
        self.rotations = prom.Counter(
            "quiesce_webhook_certificate_rotations",
            "Serving certificates loaded after the first (renewals, other replicas' writes).",
            registry=registry,
        )


# --- the certificate keeper ------------------------------------------------------------


class Certificates:
    """Keeps the serving certificate of this replica in step with the shared Secret."""

    def __init__(
        self,
        runtime: handlers.Runtime,
        metrics: WebhookMetrics,
        *,
        hosts: list[str],
        publish: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.metrics = metrics
        self.hosts = hosts
        self.publish = publish
        self.namespace, _, self.name = self.settings.webhook_cert_secret.partition("/")
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.loaded: certificates.Bundle | None = None
        self.published: bytes | None = None
        self.ready = asyncio.Event()
        self.reported: str | None = None

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/secrets/{self.name}"

    async def run(self) -> None:
        """Check the Secret forever; errors are logged and retried, never fatal."""
        while True:
            try:
                await self.refresh()
                delay = self.settings.webhook_cert_check
            except apply.ApiError as exc:
                log.warning("Reading or writing the webhook certificate failed: %s.", exc)
                delay = min(5.0, self.settings.webhook_cert_check)
            except Exception:  # a bug here must not stop rotation for good
                log.exception("Keeping the webhook certificate failed.")
                delay = min(5.0, self.settings.webhook_cert_check)
            await asyncio.sleep(delay)

    async def refresh(self, attempt: int = 0) -> None:
        now = datetime.datetime.now(datetime.UTC)
        secret = await self._read()
        bundle = _bundle(secret)
        verdict = certificates.check(bundle, self.hosts, now) if bundle is not None else None
        if verdict is not None and verdict.problems:
            self._report(secret, verdict.problems)
        elif bundle is None and self.settings.webhook_cert_provided:
            self._report(secret, (f"the Secret {self.namespace}/{self.name} has no certificate",))
        if not self.settings.webhook_cert_provided and (verdict is None or verdict.renew):
            why = (
                "; ".join(verdict.problems)
                if verdict and verdict.problems
                else ("renewal due" if verdict else "none yet")
            )
            bundle = certificates.generate(
                self.hosts,
                now,
                previous=bundle,
                validity=datetime.timedelta(seconds=self.settings.webhook_cert_validity),
            )
            written = await self._write(secret, bundle)
            if written is None:
                # Another replica wrote first: use theirs now rather than a check period later.
                if attempt < 3:
                    await self.refresh(attempt + 1)
                return
            log.info(
                "Wrote a new webhook serving certificate (serial %x, %s) to %s/%s.",
                certificates.serial(bundle.cert),
                why,
                self.namespace,
                self.name,
            )
            verdict = certificates.check(bundle, self.hosts, now)
        if bundle is None or verdict is None:
            return
        if self.loaded is None or _served(bundle) != _served(self.loaded):
            if (
                verdict.problems
                and self.loaded is not None
                and not certificates.check(self.loaded, self.hosts, now).problems
            ):
                return  # a provided Secret got worse: keep serving the good one (reported)
            await self._load(bundle)
        if verdict.expires is not None:
            self.metrics.cert_expiry.set(verdict.expires.timestamp())

    async def _load(self, bundle: certificates.Bundle) -> None:
        if bundle.ca != self.published:
            await self.publish(bundle.ca)
            first = self.published is None
            self.published = bundle.ca
            if not first and self.loaded is not None:
                # Serve the new CA's certificate only once API servers trust it.
                await asyncio.sleep(CA_SETTLE_SECONDS)
        with tempfile.TemporaryDirectory(prefix="quiesce-webhook-") as tmp:
            cert_path = os.path.join(tmp, "tls.crt")
            key_path = os.path.join(tmp, "tls.key")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(bundle.key)
            with open(cert_path, "wb") as handle:
                handle.write(bundle.cert)
            try:
                # In place: new handshakes get the new certificate, open connections keep
                # theirs, and the listener never closes.
                self.context.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as exc:
                log.error("The webhook certificate cannot be loaded: %s.", exc)
                self.metrics.cert_problems.inc()
                return
        if self.loaded is not None:
            self.metrics.rotations.inc()
        self.loaded = bundle
        self.ready.set()
        log.info(
            "Serving the webhook certificate with serial %x for %s.",
            certificates.serial(bundle.cert),
            ", ".join(self.hosts),
        )

    def _report(self, secret: dict[str, Any] | None, problems: tuple[str, ...]) -> None:
        text = "; ".join(problems)
        if text == self.reported:
            return
        self.reported = text
        self.metrics.cert_problems.inc()
        action = (
            "it is provided by someone else (cert-manager?): fix or renew it there"
            if self.settings.webhook_cert_provided
            else "quiesce replaces it"
        )
        log.error(
            "The webhook certificate in %s/%s is unusable: %s; %s.",
            self.namespace,
            self.name,
            text,
            action,
        )
        if secret is not None:
            secret.setdefault("apiVersion", "v1")
            secret.setdefault("kind", "Secret")
            event = reconcile.Event("Warning", "BadCertificate", f"{text}; {action}")
            task = asyncio.get_running_loop().create_task(post_event(self.runtime, secret, event))
            self.runtime.tasks.add(task)
            task.add_done_callback(self.runtime.tasks.discard)

    async def _read(self) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.runtime.call(
                self.runtime.api.request, "GET", self.path
            )
        except apply.ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def _write(
        self, secret: dict[str, Any] | None, bundle: certificates.Bundle
    ) -> dict[str, Any] | None:
        data = {k: base64.b64encode(v).decode("ascii") for k, v in bundle.as_secret_data().items()}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "quiesce"},
            },
            "type": "kubernetes.io/tls",
            "data": data,
        }
        try:
            if secret is None:
                path = f"/api/v1/namespaces/{self.namespace}/secrets"
                result: dict[str, Any] = await self.runtime.call(
                    lambda: self.runtime.api.request("POST", path, body=body)
                )
            else:
                # The resourceVersion read makes it a compare-and-swap between replicas.
                body["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"]
                body["metadata"]["labels"] = {
                    **(secret["metadata"].get("labels") or {}),
                    **body["metadata"]["labels"],
                }
                body["metadata"]["annotations"] = secret["metadata"].get("annotations") or {}
                body["type"] = secret.get("type", body["type"])
                result = await self.runtime.call(
                    lambda: self.runtime.api.request("PUT", self.path, body=body)
                )
        except apply.ApiError as exc:
            if exc.status == 409:
                return None
            raise
        return result


def _served(bundle: certificates.Bundle) -> tuple[bytes, bytes, bytes]:
    """What a replica serves and publishes (the CA key alone changing is not a rotation)."""
    return bundle.ca, bundle.cert, bundle.key


def _bundle(secret: Mapping[str, Any] | None) -> certificates.Bundle | None:
    if secret is None:
        return None
    try:
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    except ValueError:
        return None
    return certificates.Bundle.from_secret_data(data)


# --- the server in kopf's admission slot ---------------------------------------------------


class Server:
    """kopf's admission server protocol: an async generator of client configs.

    The TLS context belongs to :class:`Certificates` and is reloaded in place.
    """

    def __init__(self, webhook: Webhook) -> None:
        self.webhook = webhook

    async def __call__(self, fn: Callable[..., Awaitable[Any]]) -> AsyncIterator[Any]:
        import kopf
        from aiohttp import web

        settings = self.webhook.settings
        certs = self.webhook.certificates
        await certs.ready.wait()

        async def serve(request: web.Request) -> web.Response:
            started = time.perf_counter()
            try:
                data = await request.json()
            except ValueError as exc:
                raise web.HTTPBadRequest(reason=str(exc)) from None
            try:
                response = await fn(data, webhook=None, sslpeer=None, headers=dict(request.headers))
            except Exception as exc:  # kopf's own errors: unknown resource, missing data
                log.error("The admission request could not be served: %s.", exc)
                raise web.HTTPInternalServerError(reason=str(exc)[:200]) from None
            finally:
                self.webhook.metrics.latency.observe(time.perf_counter() - started)
            return web.json_response(response)

        app = web.Application()
        app.router.add_post("/{id:.*}", serve)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(
                runner,
                settings.webhook_host,
                settings.webhook_port,
                ssl_context=certs.context,
                reuse_address=True,
            )
            await site.start()
            url = client_config(settings, b"").get("url") or settings.webhook_service
            log.info(
                "The webhook listens on %s:%d (reached as %s).",
                settings.webhook_host,
                settings.webhook_port,
                url,
            )
            yield kopf.WebhookClientConfig(url=str(url))
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


# --- the mode, registered on the operator ----------------------------------------------------


class Webhook:
    """Webhook mode of one operator process: certificates, configuration, server, scan."""

    def __init__(self, runtime: handlers.Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.metrics = WebhookMetrics(runtime.metrics.registry)
        self.certificates = Certificates(
            runtime, self.metrics, hosts=webhook_hosts(self.settings), publish=self.publish
        )
        self.server = Server(self)
        self.tasks: list[asyncio.Task[None]] = []
        self.seen_missed: set[str] = set()

    async def start(self) -> None:
        self.tasks.append(asyncio.create_task(self.certificates.run(), name="webhook certs"))
        if self.settings.webhook_scan_interval > 0 and not self.settings.dry_run:
            self.tasks.append(asyncio.create_task(self.scan_forever(), name="webhook scan"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def publish(self, ca_bundle: bytes) -> None:
        """Apply the MutatingWebhookConfiguration with this CA bundle (idempotent)."""
        body = configuration_body(self.settings, ca_bundle)
        await self.runtime.call(
            lambda: self.runtime.api.request(
                "PATCH",
                f"{CONFIG_PATH}/{self.settings.webhook_name}",
                body=body,
                content_type=apply.CONTENT_TYPES["apply"],
                query=[("fieldManager", settings_.FIELD_MANAGER), ("force", "true")],
            )
        )
        log.info(
            "Applied the MutatingWebhookConfiguration %s (failurePolicy %s, timeout %d s).",
            self.settings.webhook_name,
            self.settings.webhook_failure_policy,
            self.settings.webhook_timeout,
        )

    def admit(self, body: Mapping[str, Any], *, dryrun: bool) -> Admission:
        """The admission of one pod, with the operator's switches and scope applied."""
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        if self.settings.disabled or namespace in self.runtime.disabled_namespaces:
            admission = Admission("disabled")
        elif not in_scope(namespace, self.settings.namespaces):
            admission = Admission("out-of-scope")
        else:
            admission = admit(
                body,
                config=self.settings.config,
                cluster_native=self.runtime.cluster_native,
                token=template.generate_token(),
                strict=self.settings.strict,
            )
            if self.settings.dry_run and admission.result == "injected":
                admission = Admission(
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
            await asyncio.sleep(self.settings.webhook_scan_interval)
            try:
                await self.scan()
            except apply.ApiError as exc:
                log.warning("Scanning pods for missed injections failed: %s.", exc)
            except Exception:  # never let the scan die silently
                log.exception("Scanning pods for missed injections failed.")

    async def scan(self) -> list[dict[str, Any]]:
        """Pods of webhook namespaces created without the sidecar that the webhook never saw."""
        query = [("resourceVersion", "0")]
        selector = label_selector(self.settings)
        if selector:
            query.append(("labelSelector", selector))
        namespaces = await self.runtime.call(
            lambda: self.runtime.api.request("GET", "/api/v1/namespaces", query=query)
        )
        excluded = {*self.settings.webhook_exclude_namespaces, self.settings.operator_namespace}
        served = {
            ns["metadata"]["name"]
            for ns in namespaces.get("items") or ()
            if ns["metadata"]["name"] not in excluded
            and (ns["metadata"].get("labels") or {}).get(keys.DISABLED_LABEL) != "true"
            and in_scope(ns["metadata"]["name"], self.settings.namespaces)
        }
        found: list[dict[str, Any]] = []
        for namespace in sorted(served):
            pods = await self.runtime.call(
                lambda ns=namespace: self.runtime.api.request(
                    "GET", f"/api/v1/namespaces/{ns}/pods", query=[("resourceVersion", "0")]
                )
            )
            found.extend(pod for pod in pods.get("items") or () if missed(pod))
        self.metrics.not_injected.set(len(found))
        new = [pod for pod in found if pod["metadata"]["uid"] not in self.seen_missed]
        for pod in new:
            self.seen_missed.add(pod["metadata"]["uid"])
            self.metrics.missed.inc()
            pod.setdefault("apiVersion", "v1")
            pod.setdefault("kind", "Pod")
            await post_event(
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


async def post_event(
    runtime: handlers.Runtime, obj: Mapping[str, Any], event: reconcile.Event
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


def webhook_hosts(settings: settings_.OperatorSettings) -> list[str]:
    """The names the serving certificate must carry: the URL's host, or the Service's."""
    if settings.webhook_url:
        from urllib.parse import urlsplit

        host = urlsplit(settings.webhook_url).hostname
        return [host] if host else []
    where = settings.webhook_service.partition(":")[0]
    namespace, _, name = where.partition("/")
    return [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local", name]


def register(registry: Any, runtime: handlers.Runtime) -> Webhook:
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
        id=HANDLER_ID,
        ignore_failures=True,
        side_effects=False,
        registry=registry,
    )
    # async: kopf runs plain functions in a thread pool, a hop each admission does not need.
    async def inject_pod(
        body: kopf.Body, patch: kopf.Patch, warnings: list[str], dryrun: bool, **_: Any
    ) -> None:
        raw = getattr(body, "_src", None)
        admission = webhook.admit(raw if isinstance(raw, Mapping) else dict(body), dryrun=dryrun)
        warnings.extend(admission.warnings)
        if admission.denial is not None:
            raise kopf.AdmissionError(admission.denial, code=400)
        if admission.spec:
            patch["spec"] = admission.spec
        if admission.annotations:
            patch["metadata"] = {"annotations": admission.annotations}

    return webhook
