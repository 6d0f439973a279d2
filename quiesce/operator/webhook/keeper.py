"""The certificate keeper: each replica's serving certificate in step with the shared Secret.

One Secret holds the CA and the serving certificate for every replica. The
keeper reads it every ``--webhook-cert-check``, generates or renews it (unless
it is provided, by cert-manager say), publishes a new CA in the
MutatingWebhookConfiguration before serving a certificate it signed, and
reloads the TLS context in place so rotation refuses no admission.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from quiesce.operator import apply, certificates, events, reconcile
from quiesce.operator import metrics as metrics_
from quiesce.operator import runtime as runtime_

log = logging.getLogger("quiesce.operator.webhook")

#: After a new CA is published, wait this long before serving a certificate it signed:
#: API servers pick up the new caBundle from their informer within about a second.
CA_SETTLE_SECONDS: Final = 3.0


class Certificates:
    """Keeps the serving certificate of this replica in step with the shared Secret."""

    def __init__(
        self,
        runtime: runtime_.Runtime,
        metrics: metrics_.WebhookMetrics,
        *,
        hosts: list[str],
        publish: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.metrics = metrics
        self.hosts = hosts
        self.publish = publish
        self.namespace, _, self.name = self.settings.webhook.cert_secret.partition("/")
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
                delay = self.settings.webhook.cert_check
            except apply.ApiError as exc:
                log.warning("Reading or writing the webhook certificate failed: %s.", exc)
                delay = min(5.0, self.settings.webhook.cert_check)
            except Exception:  # a bug here must not stop rotation for good
                log.exception("Keeping the webhook certificate failed.")
                delay = min(5.0, self.settings.webhook.cert_check)
            await asyncio.sleep(delay)

    async def refresh(self, attempt: int = 0) -> None:
        now = datetime.datetime.now(datetime.UTC)
        secret = await self._read()
        bundle = _bundle(secret)
        verdict = certificates.check(bundle, self.hosts, now) if bundle is not None else None
        if verdict is not None and verdict.problems:
            self._report(secret, verdict.problems)
        elif bundle is None and self.settings.webhook.cert_provided:
            self._report(secret, (f"the Secret {self.namespace}/{self.name} has no certificate",))
        if not self.settings.webhook.cert_provided and (verdict is None or verdict.renew):
            why = (
                "; ".join(verdict.problems)
                if verdict and verdict.problems
                else ("renewal due" if verdict else "none yet")
            )
            bundle = certificates.generate(
                self.hosts,
                now,
                previous=bundle,
                validity=datetime.timedelta(seconds=self.settings.webhook.cert_validity),
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
            if self.settings.webhook.cert_provided
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
            task = asyncio.get_running_loop().create_task(
                events.post_event(self.runtime, secret, event)
            )
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
