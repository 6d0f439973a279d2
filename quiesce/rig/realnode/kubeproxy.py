"""kube-proxy for a real node: Service ClusterIPs inside the node's own network namespace.

Upstream kube-proxy v1.37 (``k8s.io/kubernetes/cmd/kube-proxy``, built from
the kubelet's wrapper module), in **iptables mode**, started like the kubelet:
in the node's mount and network namespaces and its cgroup. So every rule it
writes (``KUBE-SERVICES``, ``KUBE-SVC-*``... through Debian's ``iptables``,
the nft backend) and every per-namespace sysctl lives in the node's network
namespace and goes with it; the host's tables are never touched.

How pod traffic meets those rules: a pod's veth is a port of the node's
bridge ``cni0``, and its default route leads through the rig's bridge, so a
packet to a ClusterIP is *bridged* through the node's namespace, not routed.
The kernel's bridge netfilter (``net.bridge.bridge-nf-call-iptables``, per
namespace and on by default) passes bridged IPv4 through that namespace's
iptables: kube-proxy's DNAT in PREROUTING sends it to an endpoint (the API
server on the rig's bridge, or another pod), and the reply, bridged back
through the same namespace, is un-NATed by its conntrack. No cluster CIDR is
given, so nothing is masqueraded: the endpoint sees the pod's own address.

What would touch the host, and is switched off:

- ``conntrack``: ``maxPerCore: 0`` and ``min: 0`` (``nf_conntrack_max`` and
  the conntrack hash size are global), every timeout ``0s`` and
  ``tcpBeLiberal: false``: kube-proxy then writes no conntrack sysctl;
- ``iptables.localhostNodePorts: false``: no ``route_localnet``;
- health and metrics servers on the namespace's loopback only.

It authenticates as ``system:kube-proxy`` with a client certificate from the
rig's CA, which the API server's default RBAC binds to ``system:node-proxier``
(as kubeadm's kube-proxy does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

USER: Final = "system:kube-proxy"
"""The identity the default ``system:node-proxier`` ClusterRoleBinding names."""
SYSCTLS: Final = {"net.ipv4.ip_forward": "1"}
"""Set in the node's network namespace before kube-proxy starts.

Bridge netfilter re-routes a bridged packet whose destination DNAT changed
(``br_nf_pre_routing_finish``): with forwarding off in the namespace that
route lookup fails (an unreachable route to loopback), so the packet is
dropped instead of bridged on to its endpoint. Per namespace: the host's
``ip_forward`` is untouched.
"""
HEALTHZ_PORT: Final = 10256
MODE: Final = "iptables"


def config(*, node_name: str, kubeconfig: Path) -> dict[str, Any]:
    """The KubeProxyConfiguration of a real node."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "mode": MODE,
        "iptables": {
            "localhostNodePorts": False,
            "masqueradeAll": False,
            "syncPeriod": "30s",
            "minSyncPeriod": "1s",
        },
        # Leave every global (and every) conntrack setting as it is.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
            "tcpBeLiberal": False,
            "udpTimeout": "0s",
            "udpStreamTimeout": "0s",
        },
        "healthzBindAddress": f"127.0.0.1:{HEALTHZ_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        "configSyncPeriod": "15m",
        "logging": {"format": "text"},
    }


def write(path: Path, conf: dict[str, Any]) -> Path:
    path.write_text(json.dumps(conf, indent=2))  # JSON is valid YAML
    return path


def argv(binary: Path, conf: Path) -> list[str]:
    return [str(binary), f"--config={conf}", "--v=2"]


def service_rules_command() -> list[str]:
    """A check run in the node's namespace: kube-proxy has synced its rules once."""
    return ["iptables", "-t", "nat", "-S", "KUBE-SERVICES"]
