"""The kubelet's configuration for a real node (KubeletConfiguration v1beta1).

What this machine kind needs, found when the design was tried (issue 15):

- ``failCgroupV1: false``: the host has cgroup v1 only; the 1.37 kubelet still
  runs there, warns, and posts a ``CgroupV1`` event on its Node;
- the cgroupfs driver, with ``cgroupRoot`` the node's own cgroup, so every pod
  cgroup lives under it and teardown removes them all;
- the node's own address (``--node-ip``; never loopback), where the kubelet
  serves (``address``) and which it reports as the Node's InternalIP;
- eviction thresholds at 0 and image GC off: the disk and memory are shared
  with other work on this machine, and a test pod must never be evicted for
  that.

The kubelet's server allows anonymous requests (AlwaysAllow): it listens only
on the node's address on the rig's private bridge, and the rig's API server
has no kubelet client certificate; ``kubectl logs`` and ``exec`` work so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quiesce.rig.realnode import containerd

TAINT_KEY = "quiesce.dev/real-node"
"""Every real node is tainted NoSchedule, so only pods that ask for it land there."""


def placed(spec: dict[str, Any], node: str) -> dict[str, Any]:
    """A pod spec bound to the real node ``node``, tolerating the real nodes' taint."""
    toleration = {"key": TAINT_KEY, "operator": "Exists"}
    return {**spec, "nodeName": node, "tolerations": [*spec.get("tolerations", ()), toleration]}


def config(*, node_ip: str, cgroup_root: str, client_ca: Path) -> dict[str, Any]:
    zero = {"memory.available": "0%", "nodefs.available": "0%", "imagefs.available": "0%"}
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "containerRuntimeEndpoint": f"unix://{containerd.SOCKET}",
        "address": node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": True},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "failSwapOn": False,
        "evictionHard": zero,
        "evictionPressureTransitionPeriod": "0s",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "imageMinimumGCAge": "24h",
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "resolvConf": "/etc/resolv.conf",
        "registerNode": True,
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "5s",
        "shutdownGracePeriod": "0s",
        "featureGates": {"ContainerStopSignals": True},
        "logging": {"format": "text"},
    }


def write(path: Path, conf: dict[str, Any]) -> Path:
    path.write_text(json.dumps(conf, indent=2))  # JSON is valid YAML
    return path
