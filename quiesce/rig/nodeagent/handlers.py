"""Probes and lifecycle handlers, run from the node as the kubelet runs them.

httpGet goes from the node (the agent runs in the host network namespace, so
the source address is the bridge address, the Node's IP) to the pod IP unless
``host`` is given, with ``httpHeaders``. Mirrors pkg/kubelet/lifecycle/handlers.go
and pkg/kubelet/prober: a lifecycle httpGet fails only on a transport error
(the kubelet ignores the status code), a probe fails on a status outside
200-399; tcpSocket succeeds when a connection opens; exec runs in the
container and succeeds on exit code 0; sleep waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from quiesce.rig.nodeagent import runtime

USER_AGENT_VERSION = "1.37"


class HandlerError(Exception):
    """The handler failed; the message is what the kubelet would log."""


@dataclasses.dataclass
class Target:
    """Where a handler runs: the pod IP and the container (for named ports and exec)."""

    pod_ip: str
    spec: Mapping[str, Any]
    sandbox: runtime.Sandbox
    container: runtime.Container | None
    env: Mapping[str, str]


def resolve_port(port: int | str, spec: Mapping[str, Any]) -> int:
    """A number, a numeric string, or a named container port (lifecycle.resolvePort)."""
    if isinstance(port, int):
        return port
    if port == "":
        return 80
    if port.isdigit():
        return int(port)
    for p in spec.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise HandlerError(f"couldn't find port: {port} in container {spec.get('name')}")


def _url(action: Mapping[str, Any], target: Target) -> str:
    host = action.get("host") or target.pod_ip
    port = resolve_port(action.get("port", 80), target.spec)
    scheme = (action.get("scheme") or "HTTP").lower()
    path = action.get("path") or ""
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{host}:{port}{path}"


def _headers(action: Mapping[str, Any], kind: str) -> dict[str, str]:
    # The kubelet's prober uses a transport with DisableKeepAlives (pkg/probe/http),
    # so Go sends "Connection: close" and the server closes first: the finished
    # probe connection sits in TIME_WAIT inside the pod, where the sidecar sees
    # that it came from the node.
    headers = {
        "User-Agent": f"kube-{kind}/{USER_AGENT_VERSION}",
        "Accept": "*/*",
        "Connection": "close",
    }
    for h in action.get("httpHeaders") or []:
        headers[h["name"]] = h["value"]
    return headers


async def http_get(
    action: Mapping[str, Any], target: Target, *, kind: str, timeout: float | None
) -> int:
    """Send the GET from the node; returns the status code, raises on transport errors."""
    url = _url(action, target)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.get(
                url, headers=_headers(action, kind), ssl=False, allow_redirects=True
            ) as resp,
        ):
            await resp.content.read(10 * 1024)
            return resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise HandlerError(f"GET {url}: {type(exc).__name__}: {exc}") from exc


async def tcp_open(action: Mapping[str, Any], target: Target, *, timeout: float) -> None:
    host = action.get("host") or target.pod_ip
    port = resolve_port(action.get("port", 0), target.spec)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        raise HandlerError(f"dial tcp {host}:{port}: {exc or type(exc).__name__}") from exc
    writer.close()


async def run_exec(command: Sequence[str], target: Target, *, timeout: float | None) -> int:
    if target.container is None:
        raise HandlerError("exec needs a running container")
    try:
        code, out = await target.sandbox.exec_in(
            target.container,
            command,
            env=target.env,
            workdir=target.spec.get("workingDir", "/"),
            timeout=timeout,
        )
    except TimeoutError as exc:
        raise HandlerError(f"command {list(command)} timed out after {timeout} s") from exc
    except RuntimeError as exc:
        raise HandlerError(str(exc)) from exc
    if code != 0:
        text = out.decode(errors="replace")[-300:]
        raise HandlerError(f"command {list(command)} exited with {code}: {text!r}")
    return code


async def run_lifecycle(handler: Mapping[str, Any], target: Target) -> None:
    """A postStart/preStop handler; no timeout of its own (the caller bounds it)."""
    if "exec" in handler:
        await run_exec(handler["exec"].get("command") or [], target, timeout=None)
    elif "httpGet" in handler:
        # The kubelet discards the response: only a transport error fails the hook.
        await http_get(handler["httpGet"], target, kind="lifecycle", timeout=None)
    elif "sleep" in handler:
        await asyncio.sleep(float(handler["sleep"]["seconds"]))
    elif "tcpSocket" in handler:
        # Deprecated for hooks, accepted and not run by the kubelet for years.
        return
    else:
        raise HandlerError(f"invalid handler: {dict(handler)}")


async def run_probe(probe: Mapping[str, Any], target: Target) -> None:
    """One probe attempt; raises HandlerError on failure."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "httpGet" in probe:
        status = await http_get(probe["httpGet"], target, kind="probe", timeout=timeout)
        if not 200 <= status < 400:
            raise HandlerError(f"HTTP probe failed with statuscode: {status}")
    elif "tcpSocket" in probe:
        await tcp_open(probe["tcpSocket"], target, timeout=timeout)
    elif "exec" in probe:
        await run_exec(probe["exec"].get("command") or [], target, timeout=timeout)
    else:
        raise HandlerError(f"unsupported probe: {sorted(probe)}")
