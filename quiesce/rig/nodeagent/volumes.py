"""Pod volumes as directories on the node, bind-mounted into containers.

The kubelet's volume manager (pkg/kubelet/volumemanager, pkg/volume/*) sets up
each volume under ``/var/lib/kubelet/pods/<uid>/volumes`` before the
containers start; here each volume is a directory under the pod's work
directory, filled once: ``emptyDir``, ``secret``, ``configMap``,
``downwardAPI``, ``hostPath`` and ``projected`` (whose ``serviceAccountToken``
source is a TokenRequest bound to the pod: the ``kube-api-access-*`` volume the
ServiceAccount admission plugin adds is how a pod gets its token, as on a node).
Tokens and contents are not refreshed.
"""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import quiesce
from quiesce.rig.nodeagent import envvars, runtime

log = logging.getLogger(__name__)

# The "image" of every rig container is this machine's file system: the venv and
# the quiesce checkout must stay visible. A volume mounted over one of them (an
# emptyDir at /tmp while the checkout lives under /tmp) would hide the program
# itself, so such a mount is skipped and logged (docs/node-agent.md, differences).
PROTECTED: tuple[Path, ...] = tuple(
    {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
     Path(quiesce.__file__).resolve().parents[1]}
)  # fmt: skip


def hides_the_rig(target: str) -> bool:
    t = Path(target)
    return any(p == t or t in p.parents for p in PROTECTED)


Lookup = Callable[[str, str], Awaitable[dict[str, Any] | None]]
TokenRequest = Callable[[str, str | None, int], Awaitable[str]]
"""(service account, audience or None, expirationSeconds) -> token."""


class VolumeError(Exception):
    """A volume cannot be set up yet (the kubelet reports FailedMount and retries)."""


def _write(directory: Path, files: Mapping[str, bytes]) -> None:
    for rel, content in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def _object_files(
    obj: Mapping[str, Any] | None,
    source: Mapping[str, Any],
    *,
    kind: str,
    name: str,
) -> dict[str, bytes]:
    """Keys of a Secret/ConfigMap as files, honouring ``items`` and ``optional``."""
    if obj is None:
        if source.get("optional"):
            return {}
        raise VolumeError(f"{kind} {name!r} not found")
    data: dict[str, bytes] = {}
    if kind == "secret":
        for k, v in (obj.get("data") or {}).items():
            data[k] = base64.b64decode(v)
    else:
        for k, v in (obj.get("data") or {}).items():
            data[k] = str(v).encode()
        for k, v in (obj.get("binaryData") or {}).items():
            data[k] = base64.b64decode(v)
    items = source.get("items")
    if not items:
        return data
    out: dict[str, bytes] = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise VolumeError(f"{kind} {name!r} has no key {item['key']!r}")
        out[item["path"]] = data[item["key"]]
    return out


def _downward_files(
    pod: Mapping[str, Any], items: Sequence[Mapping[str, Any]], *, pod_ip: str, host_ip: str
) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for item in items:
        if "fieldRef" in item:
            path = item["fieldRef"]["fieldPath"]
            if path in ("metadata.labels", "metadata.annotations"):
                values = pod["metadata"].get(path.split(".")[1]) or {}
                text = "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
            else:
                text = envvars.field_ref(pod, path, pod_ip=pod_ip, host_ip=host_ip)
        else:
            text = "0"  # resourceFieldRef: no resource accounting in the rig
        out[item["path"]] = text.encode()
    return out


async def prepare(
    pod: Mapping[str, Any],
    *,
    root: Path,
    lookup: Lookup,
    token: TokenRequest,
    pod_ip: str,
    host_ip: str,
) -> dict[str, Path]:
    """Set up every volume of the pod; returns volume name -> host directory."""
    sa = pod["spec"].get("serviceAccountName") or "default"
    paths: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, bytes] = {}
        if "emptyDir" in volume:
            pass
        elif "hostPath" in volume:
            paths[name] = Path(volume["hostPath"]["path"])
            continue
        elif "secret" in volume:
            src = volume["secret"]
            obj = await lookup("secrets", src["secretName"])
            files = _object_files(obj, src, kind="secret", name=src["secretName"])
        elif "configMap" in volume:
            src = volume["configMap"]
            obj = await lookup("configmaps", src["name"])
            files = _object_files(obj, src, kind="configmap", name=src["name"])
        elif "downwardAPI" in volume:
            files = _downward_files(
                pod, volume["downwardAPI"].get("items") or [], pod_ip=pod_ip, host_ip=host_ip
            )
        elif "projected" in volume:
            for source in volume["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    t = source["serviceAccountToken"]
                    value = await token(
                        sa, t.get("audience"), int(t.get("expirationSeconds", 3600))
                    )
                    files[t["path"]] = value.encode()
                elif "secret" in source:
                    src = source["secret"]
                    obj = await lookup("secrets", src["name"])
                    files.update(_object_files(obj, src, kind="secret", name=src["name"]))
                elif "configMap" in source:
                    src = source["configMap"]
                    obj = await lookup("configmaps", src["name"])
                    files.update(_object_files(obj, src, kind="configmap", name=src["name"]))
                elif "downwardAPI" in source:
                    files.update(
                        _downward_files(
                            pod,
                            source["downwardAPI"].get("items") or [],
                            pod_ip=pod_ip,
                            host_ip=host_ip,
                        )
                    )
        else:
            raise VolumeError(f"volume {name!r}: unsupported type {sorted(volume)}")
        _write(directory, files)
        paths[name] = directory
    return paths


def mounts_for(container: Mapping[str, Any], volumes: Mapping[str, Path]) -> list[runtime.Mount]:
    """A container's volumeMounts as bind mounts (subPath included)."""
    mounts: list[runtime.Mount] = []
    for vm in container.get("volumeMounts") or []:
        source = volumes.get(vm["name"])
        if source is None:
            raise VolumeError(f"volumeMount {vm['name']!r} names no volume of the pod")
        if vm.get("subPath"):
            source = source / vm["subPath"]
            if not source.exists():
                source.mkdir(parents=True)
        if hides_the_rig(vm["mountPath"]):
            log.warning(
                "volumeMount %s at %s skipped: it would hide the rig's own programs (%s)",
                vm["name"], vm["mountPath"], ", ".join(map(str, PROTECTED)),
            )  # fmt: skip
            continue
        mounts.append(
            runtime.Mount(source=source, target=vm["mountPath"], read_only=bool(vm.get("readOnly")))
        )
    return mounts
