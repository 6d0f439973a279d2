"""A Node registered with the real API server, kept alive by a heartbeat.

The scheduler binds pods only to a Ready node, and the node lifecycle
controller taints a node whose Lease goes stale. This process registers the
rig's Node (InternalIP = the bridge address) and renews its Lease every few
seconds, so pods get scheduled before the node agent (which plays the kubelet)
takes the Node over. Run as ``python -m quiesce.rig.node``.
"""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from quiesce.rig import kubeapi

LEASE_SECONDS = 40
RENEW_EVERY = 10.0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_object(name: str, ip: str, kubelet_version: str) -> dict[str, Any]:
    capacity = {"cpu": "2", "memory": "24Gi", "pods": "110", "ephemeral-storage": "50Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "quiesce.dev/rig-node": "true",
            },
        },
        "status": _status(ip, name, kubelet_version, capacity),
    }


def _status(ip: str, name: str, kubelet_version: str, capacity: dict[str, str]) -> dict[str, Any]:
    now = _now()
    conditions = [
        {
            "type": t,
            "status": "False",
            "reason": f"KubeletHas{r}",
            "message": m,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for t, r, m in (
            ("MemoryPressure", "SufficientMemory", "rig node has sufficient memory"),
            ("DiskPressure", "NoDiskPressure", "rig node has no disk pressure"),
            ("PIDPressure", "SufficientPID", "rig node has sufficient PID available"),
        )
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "quiesce rig node is posting ready status",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
    )
    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions,
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "nodeInfo": {
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": "",
            "osImage": "quiesce rig",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "containerRuntimeVersion": "rig://0",
            "kernelVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def register(api: kubeapi.ApiClient, name: str, ip: str, kubelet_version: str) -> None:
    """Create the Node (or take over an existing one) and mark it Ready."""
    obj = node_object(name, ip, kubelet_version)
    try:
        api.create("/api/v1/nodes", obj)
    except kubeapi.ApiError as exc:
        if exc.status != 409:
            raise
    api.merge_patch(f"/api/v1/nodes/{name}/status", {"status": obj["status"]})


def renew_lease(api: kubeapi.ApiClient, name: str) -> None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
    spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": _now()}
    try:
        api.merge_patch(path, {"spec": spec})
    except kubeapi.ApiError as exc:
        if exc.status != 404:
            raise
        node = api.get(f"/api/v1/nodes/{name}")
        owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}
        api.create(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            {"metadata": {"name": name, "ownerReferences": [owner]}, "spec": spec},
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Register the rig's Node and keep its Lease fresh."
    )
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--node-ip", required=True)
    parser.add_argument("--kubelet-version", required=True)
    args = parser.parse_args(argv)
    api = kubeapi.ApiClient(args.server, ca=args.ca, cert=args.cert, key=args.key)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    register(api, args.node_name, args.node_ip, args.kubelet_version)
    print(f"registered node {args.node_name} ({args.node_ip})", flush=True)
    while not stop.is_set():
        try:
            renew_lease(api, args.node_name)
        except Exception as exc:  # keep beating through API server hiccups
            print(f"lease renewal failed: {exc}", file=sys.stderr, flush=True)
        stop.wait(RENEW_EVERY)
    return 0


if __name__ == "__main__":
    sys.exit(main())
