"""A container's environment, built as the kubelet builds it.

Mirrors ``makeEnvironmentVariables`` (pkg/kubelet/kubelet_pods.go): service
variables first (here only ``KUBERNETES_SERVICE_*``, pointing at the real API
server: the rig has no kube-proxy), then ``envFrom`` sources, then ``env`` in
order, each value expanded with ``$(VAR)`` against what is defined so far, as
``third_party/forked/golang/expansion`` does: ``$$`` is an escaped ``$``, an
undefined ``$(VAR)`` stays as written, an unterminated ``$(`` is kept.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Lookup = Callable[[str, str], Awaitable[dict[str, Any] | None]]
"""(kind, name) -> the Secret or ConfigMap object, or None if it does not exist."""


class EnvError(Exception):
    """A required env source is missing (the kubelet reports CreateContainerConfigError)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (expansion.Expand with MappingFuncFor)."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":
                read, advance = "$", 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    read, advance = "$(", 1
                else:
                    name = rest[1:close]
                    read = env.get(name, f"$({name})")
                    advance = close + 1
            else:
                read, advance = "$" + rest[0], 1
            out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_ref(pod: Mapping[str, Any], path: str, *, pod_ip: str, host_ip: str) -> str:
    """Downward API ``fieldRef`` values (kubelet_pods.go podFieldSelectorRuntimeValue)."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _SUBSCRIPT.match(path)
    if match:
        return str(meta.get(match.group(1), {}).get(match.group(2), ""))
    raise EnvError(f"unsupported fieldRef {path!r}")


def _decoded(obj: Mapping[str, Any], kind: str) -> dict[str, str]:
    if kind == "secrets":
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


async def build(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    pod_ip: str,
    host_ip: str,
    service_env: Mapping[str, str],
    lookup: Lookup,
) -> dict[str, str]:
    """The container's env, in the kubelet's order; raises EnvError for a missing source."""
    env: dict[str, str] = dict(service_env)
    cache: dict[tuple[str, str], dict[str, str] | None] = {}

    async def source(kind: str, name: str) -> dict[str, str] | None:
        if (kind, name) not in cache:
            obj = await lookup(kind, name)
            cache[(kind, name)] = _decoded(obj, kind) if obj is not None else None
        return cache[(kind, name)]

    for item in container.get("envFrom") or []:
        prefix = item.get("prefix", "")
        for key, kind in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
            ref = item.get(key)
            if ref is None:
                continue
            data = await source(kind, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f"{kind[:-1]} {ref['name']!r} not found")
            for k, v in data.items():
                env[prefix + k] = v

    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        value_from = var["valueFrom"]
        if "fieldRef" in value_from:
            env[name] = field_ref(
                pod, value_from["fieldRef"]["fieldPath"], pod_ip=pod_ip, host_ip=host_ip
            )
        elif "secretKeyRef" in value_from or "configMapKeyRef" in value_from:
            kind, ref = (
                ("secrets", value_from["secretKeyRef"])
                if "secretKeyRef" in value_from
                else ("configmaps", value_from["configMapKeyRef"])
            )
            data = await source(kind, ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise EnvError(f"{kind[:-1]} {ref['name']!r} has no key {ref['key']!r}")
            env[name] = data[ref["key"]]
        elif "resourceFieldRef" in value_from:
            # No resource accounting in the rig: report the node's size.
            env[name] = "2" if "cpu" in value_from["resourceFieldRef"]["resource"] else "0"
        else:
            raise EnvError(f"unsupported valueFrom for {name!r}")
    return env


def service_env(host: str, port: int) -> dict[str, str]:
    """The ``kubernetes`` Service's variables, pointing at the real API server."""
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
        "KUBERNETES_PORT_443_TCP": f"tcp://{host}:{port}",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": str(port),
        "KUBERNETES_PORT_443_TCP_ADDR": host,
    }
