"""The whole rig: network, control plane and Consul, up and down as one.

Used by the pytest fixtures, ``quiesce demo`` and the benchmarks. A rig writes
its state (pids, namespaces, bridge) to ``state.json`` in its work directory,
so ``python -m quiesce.rig down`` can stop a rig started by another process
and leave no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from quiesce.rig import binaries, consul, controlplane, errors, haproxy, network, process

RIGS_DIR = binaries.CACHE_ROOT / "rigs"

REQUIRED_TOOLS = {
    "ip": "apt-get install iproute2",
    "haproxy": "apt-get install haproxy",
    "nice": "apt-get install coreutils",
}


def check_machine() -> None:
    """Fail with the missing tool and the command that installs it."""
    if os.geteuid() != 0:
        raise errors.RigError("the rig creates network namespaces and a bridge: run it as root")
    for tool, how in REQUIRED_TOOLS.items():
        if shutil.which(tool) is None:
            raise errors.MissingTool(tool, how)
    for binary in binaries.BINARY_FAMILY:
        binaries.require(binary)


class Rig:
    """A running rig. Use :meth:`start` (or ``with Rig.start() as rig``)."""

    def __init__(self, workdir: Path, net: network.RigNetwork) -> None:
        self.workdir = workdir
        self.network = net
        self.control_plane: controlplane.ControlPlane | None = None
        self.consul: consul.ConsulAgent | None = None
        self.load_balancers: list[haproxy.HAProxy] = []
        self.node_agent: process.ManagedProcess | None = None
        # Real nodes (quiesce.rig.realnode.node.RealNode) register here, so stop() stops them.
        self.real_nodes: list[Any] = []
        self.started_at = time.monotonic()
        self._owns_workdir = False

    # --- lifecycle ---------------------------------------------------------
    @classmethod
    def start(
        cls,
        workdir: Path | None = None,
        *,
        kubernetes: bool = True,
        with_consul: bool = True,
        node_agent: bool = False,
    ) -> Rig:
        check_machine()
        owns_workdir = workdir is None
        workdir = workdir or Path(tempfile.mkdtemp(prefix="quiesce-rig-"))
        workdir.mkdir(parents=True, exist_ok=True)
        rig = cls(workdir, network.RigNetwork.create())
        rig._owns_workdir = owns_workdir
        try:
            if with_consul:
                rig.consul = consul.start(
                    workdir, address=rig.network.host_ip, node_name=controlplane.NODE_NAME
                )
                rig.save_state()
            if kubernetes:
                rig.control_plane = controlplane.start(
                    workdir, host_ip=rig.network.host_ip, service_cidr=str(rig.network.service_cidr)
                )
            if node_agent:
                rig.start_node_agent()
            rig.save_state()
        except BaseException:
            rig.stop()
            raise
        return rig

    def __enter__(self) -> Rig:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start_node_agent(self, *, backoff: float = 10.0) -> process.ManagedProcess:
        """Start the node agent (the rig's kubelet) if it is not running yet."""
        from quiesce.rig.nodeagent import runner

        if self.node_agent is None or not self.node_agent.running():
            self.node_agent = runner.start_node_agent(self, backoff=backoff)
            self.save_state()
        return self.node_agent

    def processes(self) -> list[process.ManagedProcess]:
        # The node agent first: it removes its pods' sandboxes while the bridge exists.
        procs = [self.node_agent] if self.node_agent is not None else []
        procs += [lb.proc for lb in self.load_balancers]
        if self.control_plane:
            procs += self.control_plane.processes
        if self.consul:
            procs.append(self.consul.proc)
        return procs

    def stop(self) -> None:
        """Stop every process the rig started and remove its network."""
        for node in list(self.real_nodes):
            node.stop()
        for p in self.processes():
            p.stop()
        self.network.destroy()
        with contextlib.suppress(FileNotFoundError):
            (self.workdir / "state.json").unlink()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- conveniences -------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        if self.control_plane is None:
            raise errors.RigError("this rig was started without Kubernetes")
        return self.control_plane.kubeconfig

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this rig's API server."""
        argv = [str(binaries.require("kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise errors.RigError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig that acts as a service account (a TokenRequest token, 3 h).

        Tests run the operator under its shipped RBAC this way, so a missing rule fails.
        """
        token = self.kubectl(
            "create", "token", name, "-n", namespace, "--duration=3h"
        ).stdout.strip()  # fmt: skip
        admin = json.loads(self.kubeconfig.read_text())
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": admin["clusters"],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "rig", "context": {"cluster": "rig", "user": name}}],
            "current-context": "rig",
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def load_balancer(
        self, service: str, profile: haproxy.Profile | None = None, *, port: int = 8080
    ) -> haproxy.HAProxy:
        """Start HAProxy in the client namespace in front of Consul service ``service``."""
        if self.consul is None:
            raise errors.RigError("this rig was started without Consul")
        lb = haproxy.start(
            self.workdir,
            namespace=self.network.client,
            dns=f"{self.consul.address}:{self.consul.dns_port}",
            service=service,
            profile=profile,
            name=f"haproxy-{service}-{port}",
            port=port,
        )
        self.load_balancers.append(lb)
        self.save_state()
        return lb

    def env(self) -> dict[str, str]:
        """What a user's shell needs to talk to this rig."""
        env = {}
        if self.control_plane:
            env["KUBECONFIG"] = str(self.control_plane.kubeconfig)
        if self.consul:
            env["CONSUL_HTTP_ADDR"] = self.consul.http_addr
        return env

    # --- state, for `python -m quiesce.rig down` --------------------------
    def save_state(self) -> None:
        state: dict[str, Any] = {
            "pids": [p.pid for p in self.processes() if p.popen is not None],
            "netns": [ns.netns for ns in self.network.namespaces.values()],
            "bridge": self.network.bridge,
            "env": self.env(),
        }
        (self.workdir / "state.json").write_text(json.dumps(state, indent=2))


def detached_workdir() -> Path:
    """A work directory for a rig started by ``up`` (and found again by ``down``)."""
    RIGS_DIR.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="up-", dir=RIGS_DIR))


def running_rigs() -> list[Path]:
    """State files of the rigs started by ``up`` that are still running."""
    return sorted(RIGS_DIR.glob("up-*/state.json")) if RIGS_DIR.exists() else []


def stop_from_state(state_file: Path) -> None:
    """Stop a rig another process started, from its state file."""
    state = json.loads(state_file.read_text())
    for pid in state["pids"]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for pid in state["pids"]:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in state["pids"]):
        time.sleep(0.05)
    from quiesce.rig.nodeagent import runner
    from quiesce.rig.realnode import node as realnode

    # Real nodes' leftovers: their cgroups (shims, containers) and host settings.
    realnode.cleanup_after(state["bridge"])
    # Pod sandboxes of the node agent too, in case it died before removing them.
    for ns in [*state["netns"], *runner.sandboxes_of(state["bridge"])]:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        for pid_text in out.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_text), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", state["bridge"]], capture_output=True, check=False)
    shutil.rmtree(state_file.parent, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
