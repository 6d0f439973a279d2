"""The webhook's HTTPS server, in kopf's admission slot.

kopf's own server restarts its listener when the certificate changes, which
refuses admissions for a moment; this one serves with the keeper's TLS
context, reloaded in place, so a rotation drops none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from quiesce.operator.webhook import admission

if TYPE_CHECKING:
    from quiesce.operator.webhook import mode

log = logging.getLogger("quiesce.operator.webhook")


class Server:
    """kopf's admission server protocol: an async generator of client configs.

    The TLS context belongs to :class:`Certificates` and is reloaded in place.
    """

    def __init__(self, webhook: mode.Webhook) -> None:
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
                settings.webhook.host,
                settings.webhook.port,
                ssl_context=certs.context,
                reuse_address=True,
            )
            await site.start()
            url = admission.client_config(settings, b"").get("url") or settings.webhook.service
            log.info(
                "The webhook listens on %s:%d (reached as %s).",
                settings.webhook.host,
                settings.webhook.port,
                url,
            )
            yield kopf.WebhookClientConfig(url=str(url))
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
