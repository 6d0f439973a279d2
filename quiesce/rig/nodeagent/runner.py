"""Start the node agent for a running :class:`~quiesce.rig.rig.Rig`."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

from quiesce.rig import process

if TYPE_CHECKING:
    from quiesce.rig import rig as rig_module

AGENT_LOG = "node-agent.log"


def start_node_agent(rig: rig_module.Rig, *, backoff: float = 10.0) -> process.ManagedProcess:
    """Start ``python -m quiesce.rig.nodeagent`` for the rig's Node, with the Node's identity."""
    cp = rig.control_plane
    if cp is None:
        raise RuntimeError("the node agent needs a rig started with Kubernetes")
    pki = rig.workdir / "pki"
    proc = process.ManagedProcess(
        "node-agent",
        [
            sys.executable,
            "-m",
            "quiesce.rig.nodeagent",
            "--server",
            cp.server,
            "--ca",
            str(cp.ca.cert_path),
            "--cert",
            str(pki / "node.crt"),
            "--key",
            str(pki / "node.key"),
            "--node-name",
            cp.node_name,
            "--node-ip",
            rig.network.host_ip,
            "--subnet",
            str(rig.network.subnet),
            "--workdir",
            str(rig.workdir / "node-agent"),
            "--backoff",
            str(backoff),
        ],
        log=rig.workdir / "logs" / AGENT_LOG,
    ).start()
    log = proc.log
    proc.wait_ready(
        lambda: "watching" in log.read_text(errors="replace"), timeout=20, what="watching pods"
    )
    return proc


def sandboxes_of(bridge: str) -> list[str]:
    """Network namespaces of the agent's pods on ``bridge`` (``<prefix>-p<uid8>``)."""
    prefix = bridge.removesuffix("br") + "-p"
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]
