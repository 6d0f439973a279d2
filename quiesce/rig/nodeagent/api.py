"""The agent's async client for the real API server, as the Node's identity.

The agent authenticates with the Node's client certificate
(``system:node:<name>``), so the Node authorizer and NodeRestriction apply
to it exactly as to a kubelet: it sees only pods bound to its node and the
secrets, config maps and service-account tokens those pods reference.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")
        self.status = status


class Api:
    """Typed JSON calls plus a watch stream; one aiohttp session."""

    def __init__(self, server: str, *, ca: Path, cert: Path, key: Path) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=str(ca))
        self._ssl.load_cert_chain(str(cert), str(key))
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=20)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        async with self.session.request(
            method,
            self.server + path,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(method, path, resp.status, text)
            return json.loads(text) if text else None

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def post(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, body)

    async def merge_patch(self, path: str, body: Any) -> Any:
        return await self.request("PATCH", path, body, content_type="application/merge-patch+json")

    async def delete(self, path: str, body: Any = None) -> Any:
        return await self.request("DELETE", path, body)

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        """Events of one watch request; ends when the server closes it."""
        sep = "&" if "?" in path else "?"
        url = (
            f"{self.server}{path}{sep}watch=true&allowWatchBookmarks=true"
            f"&timeoutSeconds=300&resourceVersion={resource_version}"
        )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=330)
        async with self.session.get(url, timeout=timeout) as resp:
            if resp.status >= 400:
                raise ApiError("WATCH", path, resp.status, await resp.text())
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)


async def retry_forbidden(what: str, call: Any, *, attempts: int = 20) -> Any:
    """Retry a call the Node authorizer refuses for a moment.

    The authorizer's graph learns of a pod's references (its secrets, its
    service account) asynchronously after the pod is bound; the kubelet
    retries too.
    """
    for attempt in range(attempts):
        try:
            return await call()
        except ApiError as exc:
            if exc.status != 403 or attempt == attempts - 1:
                raise
            log.debug("%s: forbidden for now, retrying (%d)", what, attempt + 1)
            await asyncio.sleep(0.25)
    raise AssertionError("unreachable")
