"""The node's CNI network: the bridge plugin on the node's own bridge, joined to the rig's.

Inside the node's network namespace the veth from the rig's bridge is a port
of a bridge, ``cni0``, that also carries the node's address. The bridge
plugin attaches each pod's veth to ``cni0``, so pods sit on the rig's layer-2
segment with addresses from the rig's own /24 (a range per node, from
host-local: node 1 .41-.60, node 2 .61-.80, node 3 .81-.100), their default
route through the rig's bridge address: HAProxy, Consul and the client
namespace reach pod IPs as they reach the node agent's. ``isGateway`` is off
(the node is not the pods' router) and there is no masquerading: a pod's
traffic leaves with the pod's address. The loopback plugin is run by
containerd itself for every sandbox.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, Final

BRIDGE: Final = "cni0"
PLUGIN_DIRS: Final = ("/usr/lib/cni", "/opt/cni/bin")
PLUGINS: Final = ("bridge", "host-local", "loopback")
FIRST_HOST: Final = 41
"""Host index where the first real node's pod range starts.

Inside the rig's own part of the /24 (.2-.100, which the test process hands
out, see :class:`quiesce.rig.network.RigNetwork`), never the node agent's
(.101 up, which a separate process hands out and could not know about):
the node takes its range out of the rig's free addresses while it lives.
"""
PODS_PER_NODE: Final = 20
MAX_NODES: Final = 3


def plugin_dir() -> Path | None:
    """The first directory holding every plugin the node needs (Debian's is /usr/lib/cni)."""
    for d in PLUGIN_DIRS:
        if all((Path(d) / p).exists() for p in PLUGINS):
            return Path(d)
    return None


def pod_range(subnet: ipaddress.IPv4Network, index: int) -> tuple[str, str]:
    """The first and last pod address of node ``index`` (1-based) in the rig's subnet."""
    if not 1 <= index <= MAX_NODES:
        raise ValueError(f"a rig has real nodes 1 to {MAX_NODES}, not {index}")
    first = FIRST_HOST + (index - 1) * PODS_PER_NODE
    last = first + PODS_PER_NODE - 1
    base = int(subnet.network_address)
    return str(ipaddress.IPv4Address(base + first)), str(ipaddress.IPv4Address(base + last))


def conflist(
    subnet: ipaddress.IPv4Network, gateway: str, index: int, data_dir: Path
) -> dict[str, Any]:
    start, end = pod_range(subnet, index)
    return {
        "cniVersion": "1.0.0",
        "name": "quiesce-rig",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(data_dir),
                    "ranges": [
                        [
                            {
                                "subnet": str(subnet),
                                "rangeStart": start,
                                "rangeEnd": end,
                                "gateway": gateway,
                            }
                        ]
                    ],
                    "routes": [{"dst": "0.0.0.0/0", "gw": gateway}],
                },
            }
        ],
    }


def write(conf_dir: Path, conf: dict[str, Any]) -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / "10-quiesce-rig.conflist"
    path.write_text(json.dumps(conf, indent=2))
    return path
