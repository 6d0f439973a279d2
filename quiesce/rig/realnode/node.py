"""A real Kubernetes node joined to a rig: kubelet, containerd and runc.

Laid out as the design decides ("Rig network"): each node lives in

- a **network namespace** of its own, joined to the rig's bridge by a veth,
  with its own address (the Node's InternalIP, its pods' hostIP, the source of
  its probes and hooks). The veth is a port of the node's bridge ``cni0``,
  which carries that address and the pods' veths (see :mod:`.cni`);
- a **mount namespace** of its own (``unshare --mount --propagation
  private``), where the fixed paths the kubelet and containerd use
  (``/var/lib/kubelet``, ``/run/containerd``...) are bind mounts of the node's
  own directories: nothing they write there reaches the host;
- a **cgroup** of its own in every hierarchy (``quiesce-<bridge>-<name>``),
  holding containerd, the kubelet, the shims and (as the kubelet's
  ``cgroupRoot``) every pod: teardown kills what is left in it and removes it.

A *holder* process (``sleep infinity``) keeps both namespaces alive; containerd
and the kubelet are started into them with ``nsenter``. Global kernel settings
the kubelet changes are saved and restored by :mod:`.host`.

Teardown, in order: the kubelet stops; every pod sandbox is stopped and
removed through the CRI (CNI DEL frees its address and veth); containerd
stops; whatever still runs in the node's cgroup (shims, containers) is
killed and the cgroups are removed; the holder ends, so the mount namespace
and its mounts go with it; the network namespace and its veth are deleted;
the Node object is deleted; the host ledger restores the kernel settings and
removes the mount points it created, once no other node needs them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from quiesce.rig import binaries, errors, network, pki, process
from quiesce.rig.realnode import cni, containerd, host, images, kubelet, kubeproxy
from quiesce.rig.realnode.cgroups import (
    cgroup_hierarchies,
    kill_trees,
    pids_in,
    remove_trees,
)

if TYPE_CHECKING:
    from quiesce.rig.rig import Rig

BINARIES: Final = (
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "crictl",
)
HOST_TOOLS: Final = {
    "nsenter": "apt-get install util-linux",
    "unshare": "apt-get install util-linux",
    "mount": "apt-get install mount",
    "gcc": "apt-get install gcc",
    "iptables": "apt-get install iptables",
}


def check_machine() -> None:
    """Fail with what is missing, and how to get it, before changing anything."""
    for b in BINARIES:
        binaries.require(b)
    for tool, how in HOST_TOOLS.items():
        if shutil.which(tool) is None:
            raise errors.MissingTool(tool, how)
    if cni.plugin_dir() is None:
        raise errors.MissingTool(
            "CNI plugins", f"{', '.join(cni.PLUGINS)}: apt-get install containernetworking-plugins"
        )
    if not images.BUSYBOX.exists():
        raise errors.MissingTool("busybox", "apt-get install busybox-static")


class RealNode:
    """One real node of a rig. Use :meth:`start`; :meth:`stop` undoes everything."""

    def __init__(self, rig: Rig, name: str, index: int) -> None:
        assert rig.control_plane is not None, "a real node needs the rig's control plane"
        self.rig = rig
        self.name = name
        self.index = index
        self.dir = rig.workdir / "nodes" / name
        self.logs = rig.workdir / "logs"
        self.cgroup = f"quiesce-{rig.network.bridge}-{name}"
        self.namespace: network.Namespace | None = None
        self.holder: process.ManagedProcess | None = None
        self.containerd: process.ManagedProcess | None = None
        self.kubelet: process.ManagedProcess | None = None
        self.kube_proxy: process.ManagedProcess | None = None
        self.seen_pids: set[int] = set()
        self._acquired = False
        self._reserved = False
        self._cgroups: list[Path] = []
        self.started_seconds: float | None = None

    # --- addresses ----------------------------------------------------------
    @property
    def ip(self) -> str:
        assert self.namespace is not None
        return self.namespace.ip

    @property
    def netns(self) -> str:
        assert self.namespace is not None
        return self.namespace.netns

    def pod_range(self) -> tuple[str, str]:
        return cni.pod_range(self.rig.network.subnet, self.index)

    # --- running things inside the node -----------------------------------
    def enter(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped so it runs in the node's mount and network namespaces."""
        assert self.holder is not None
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--net", "--", *argv]

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.enter(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise errors.RigError(
                f"{self.name}: {' '.join(argv)} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()}"
            )
        return result

    def crictl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(
            [
                str(binaries.require("crictl")),
                f"--runtime-endpoint=unix://{containerd.SOCKET}",
                "--timeout=30s",
                *args,
            ],
            check=check,
        )

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(
            [str(binaries.require("ctr")), f"--address={containerd.SOCKET}", "-n", "k8s.io", *args],
            check=check,
        )

    def _in_cgroup(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started inside the node's cgroups (a shell moves itself, then execs)."""
        procs = " ".join(f"'{c}/cgroup.procs'" for c in self._cgroups)
        script = f'for f in {procs}; do echo $$ > "$f" || exit 97; done; exec "$@"'
        return ["sh", "-c", script, "in-node-cgroup", *argv]

    def cgroup_pids(self) -> set[int]:
        """Every process in the node's cgroup trees."""
        return pids_in(self._cgroups)

    # --- start --------------------------------------------------------------
    @classmethod
    def start(cls, rig: Rig, name: str = "rig-real-1", index: int = 1) -> RealNode:
        check_machine()
        if any(n.name == name for n in rig.real_nodes):
            raise errors.RigError(f"the rig already has a node named {name}")
        node = cls(rig, name, index)
        rig.real_nodes.append(node)
        started = time.monotonic()
        try:
            node._start()
        except BaseException:
            node.stop()
            raise
        node.started_seconds = time.monotonic() - started
        return node

    def import_image(self, image: images.Image) -> None:
        """Make ``image`` (an OCI archive) available to the node's pods, no registry needed."""
        self.ctr("images", "import", "--platform=linux/amd64", str(image.archive))

    def _start(self) -> None:
        assert self.rig.control_plane is not None
        cp = self.rig.control_plane
        for sub in ("kubelet", "containerd", "cni", "log/pods", "log/containers", "etc-cni"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        pause, busybox = images.pause_image(), images.busybox_image()

        self._make_namespace()
        self._reserve_pod_range()
        self._make_cgroups()
        # The holder: a process in the node's network namespace and a new,
        # private mount namespace, for as long as the node lives.
        self.holder = process.ManagedProcess(
            f"{self.name}-holder",
            self._in_cgroup(
                [
                    "unshare",
                    "--mount",
                    "--propagation=private",
                    "--",
                    "nsenter",
                    f"--net=/run/netns/{self.netns}",
                    "--",
                    "sleep",
                    "infinity",
                ]
            ),
            log=self.logs / f"{self.name}-holder.log",
        ).start()
        self.holder.wait_ready(self._holder_entered, timeout=10, what="in its namespaces")
        host.acquire(f"{self.rig.network.bridge}/{self.name}", self.holder.pid)
        self._acquired = True
        self._mount_private_paths()

        # containerd, with the node's CNI network.
        plugin_dir = cni.plugin_dir()
        assert plugin_dir is not None
        cni_conf = self.dir / "cni" / "net.d"
        cni.write(
            cni_conf,
            cni.conflist(
                self.rig.network.subnet,
                self.rig.network.host_ip,
                self.index,
                self.dir / "cni" / "networks",
            ),
        )
        conf = self.dir / "containerd.toml"
        conf.write_text(
            containerd.config(
                runc=binaries.require("runc"),
                sandbox_image=pause.name,
                cni_bin_dir=plugin_dir,
                cni_conf_dir=cni_conf,
            )
        )
        env = dict(os.environ)
        env["PATH"] = f"{binaries.require('containerd').parent}:{env.get('PATH', '/usr/bin:/bin')}"
        self.containerd = process.ManagedProcess(
            f"{self.name}-containerd",
            self._in_cgroup(
                self.enter([str(binaries.require("containerd")), "--config", str(conf)])
            ),
            log=self.logs / f"{self.name}-containerd.log",
            env=env,
        ).start()
        sock = Path(f"/proc/{self.holder.pid}/root") / containerd.SOCKET.lstrip("/")
        self.containerd.wait_ready(
            lambda: sock.exists() and self.ctr("version", check=False).returncode == 0,
            timeout=60,
            what="serving",
        )
        for image in (pause, busybox):
            self.import_image(image)

        # The kubelet, as system:node:<name>.
        crt, key = cp.ca.issue(
            f"kubelet-{self.name}",
            common_name=f"system:node:{self.name}",
            organizations=("system:nodes",),
        )
        kubeconfig = pki.kubeconfig(
            self.dir / "kubelet.kubeconfig",
            server=cp.server,
            ca=cp.ca.cert_path,
            cert=crt,
            key=key,
            user=f"system:node:{self.name}",
        )
        kconf = kubelet.write(
            self.dir / "kubelet.yaml",
            kubelet.config(
                node_ip=self.ip, cgroup_root=f"/{self.cgroup}", client_ca=cp.ca.cert_path
            ),
        )
        self.kubelet = process.ManagedProcess(
            f"{self.name}-kubelet",
            self._in_cgroup(
                self.enter(
                    [
                        str(binaries.require("kubelet")),
                        f"--config={kconf}",
                        f"--kubeconfig={kubeconfig}",
                        f"--hostname-override={self.name}",
                        f"--node-ip={self.ip}",
                        "--node-labels=quiesce.dev/real-node=true",
                        "--v=2",
                    ]
                )
            ),
            log=self.logs / f"{self.name}-kubelet.log",
            env=env,
        ).start()
        self.kubelet.wait_ready(self.ready, timeout=120, what="a Ready Node")
        self._start_kube_proxy(env)

    def _start_kube_proxy(self, env: dict[str, str]) -> None:
        """kube-proxy in the node's namespaces (see :mod:`.kubeproxy`), as system:kube-proxy."""
        assert self.rig.control_plane is not None
        cp = self.rig.control_plane
        # Per namespace: the node's, never the host's (see kubeproxy.SYSCTLS).
        for key_, value in kubeproxy.SYSCTLS.items():
            self.run(["sh", "-c", f"echo {value} > {host.sysctl_path(key_)}"])
        crt, key = cp.ca.issue(f"kube-proxy-{self.name}", common_name=kubeproxy.USER)
        kubeconfig = pki.kubeconfig(
            self.dir / "kube-proxy.kubeconfig",
            server=cp.server,
            ca=cp.ca.cert_path,
            cert=crt,
            key=key,
            user=kubeproxy.USER,
        )
        conf = kubeproxy.write(
            self.dir / "kube-proxy.yaml",
            kubeproxy.config(node_name=self.name, kubeconfig=kubeconfig),
        )
        self.kube_proxy = process.ManagedProcess(
            f"{self.name}-kube-proxy",
            self._in_cgroup(self.enter(kubeproxy.argv(binaries.require("kube-proxy"), conf))),
            log=self.logs / f"{self.name}-kube-proxy.log",
            env=env,
        ).start()
        self.kube_proxy.wait_ready(self._services_synced, timeout=60, what="Service rules")

    def _services_synced(self) -> bool:
        """kube-proxy has written the ``kubernetes`` Service's rules in the node's namespace."""
        rules = self.run(kubeproxy.service_rules_command(), check=False).stdout
        return "default/kubernetes" in rules

    def _holder_entered(self) -> bool:
        assert self.holder is not None
        pid = self.holder.pid
        in_netns = os.readlink(f"/proc/{pid}/ns/net") == f"net:[{os.stat(self._netns_file).st_ino}]"
        own_mounts = os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        return in_netns and own_mounts

    @property
    def _netns_file(self) -> str:
        return f"/run/netns/{self.netns}"

    def _make_namespace(self) -> None:
        """A namespace on the rig's bridge whose address moves onto the node's bridge."""
        net = self.rig.network
        self.namespace = net._add(network.Namespace, self.name)
        ns = self.namespace
        prefix = f"{ns.ip}/{net.subnet.prefixlen}"
        ns.exec_ip("addr", "del", prefix, "dev", "eth0")
        ns.exec_ip("link", "add", cni.BRIDGE, "type", "bridge")
        ns.exec_ip("link", "set", "eth0", "master", cni.BRIDGE)
        ns.exec_ip("addr", "add", prefix, "dev", cni.BRIDGE)
        ns.exec_ip("link", "set", cni.BRIDGE, "up")
        ns.exec_ip("route", "replace", "default", "via", net.host_ip)
        self.rig.save_state()

    def pod_addresses(self) -> list[str]:
        first, last = (ipaddress.IPv4Address(a) for a in self.pod_range())
        return [str(ipaddress.IPv4Address(a)) for a in range(int(first), int(last) + 1)]

    def _reserve_pod_range(self) -> None:
        """Take the pods' addresses out of the rig's free ones while the node lives."""
        net = self.rig.network
        taken = {ns.ip for ns in net.namespaces.values()} & set(self.pod_addresses())
        if taken:
            raise errors.RigError(f"{self.name}: pod addresses in use on {net.bridge}: {taken}")
        reserved = set(self.pod_addresses())
        net._free = [ip for ip in net._free if ip not in reserved]
        self._reserved = True

    def _release_pod_range(self) -> None:
        if self._reserved:
            self.rig.network._free += self.pod_addresses()
            self._reserved = False

    def _make_cgroups(self) -> None:
        for hierarchy in cgroup_hierarchies():
            d = hierarchy / self.cgroup
            d.mkdir(exist_ok=True)
            self._cgroups.append(d)
            if hierarchy.name == "cpuset":
                # A new v1 cpuset has no CPUs or memory nodes: copy the parent's.
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (d / f).write_text((hierarchy / f).read_text())

    def _mount_private_paths(self) -> None:
        sources = {
            "/var/lib/kubelet": self.dir / "kubelet",
            "/var/log/pods": self.dir / "log" / "pods",
            "/var/log/containers": self.dir / "log" / "containers",
            "/var/lib/containerd": self.dir / "containerd",
            "/var/lib/cni": self.dir / "cni",
            "/etc/cni": self.dir / "etc-cni",
        }
        lines = ["set -e"]
        for target in host.PRIVATE_PATHS:
            if target in sources:
                lines.append(f"mount --bind '{sources[target]}' '{target}'")
            else:  # /run/containerd, /opt/containerd: scratch space
                lines.append(f"mount -t tmpfs -o mode=0755 tmpfs '{target}'")
        self.run(["sh", "-c", "\n".join(lines)])

    # --- state ----------------------------------------------------------------
    def node_object(self) -> dict[str, Any] | None:
        assert self.rig.control_plane is not None
        from quiesce.rig import kubeapi

        try:
            result: dict[str, Any] = self.rig.control_plane.api().get(f"/api/v1/nodes/{self.name}")
        except kubeapi.ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def ready(self) -> bool:
        node = self.node_object()
        if node is None:
            return False
        conds = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
        return conds.get("Ready") == "True"

    # --- stop -----------------------------------------------------------------
    def stop(self) -> None:
        """Undo everything :meth:`start` did; safe to call twice or after a failed start."""
        self.seen_pids |= self.cgroup_pids()
        if self.kube_proxy is not None:
            # Its rules and sysctls are the node's namespace's: they go with it.
            self.kube_proxy.stop(timeout=10)
        if self.kubelet is not None:
            self.kubelet.stop(timeout=15)
        if self.containerd is not None and self.containerd.running():
            # Every sandbox: its containers stop, CNI DEL frees its address and veth.
            self.crictl("rmp", "--force", "--all", check=False)
            self.containerd.stop(timeout=15)
        self._kill_cgroup_tree()
        if self.holder is not None:
            self.holder.stop(timeout=5)
        self._remove_cgroups()
        if self.namespace is not None:
            self.namespace.remove()
            self.namespace = None
            self.rig.save_state()
        self._delete_node_object()
        self._release_pod_range()
        if self._acquired:
            host.release(f"{self.rig.network.bridge}/{self.name}")
            self._acquired = False
        if self in self.rig.real_nodes:
            self.rig.real_nodes.remove(self)

    def _kill_cgroup_tree(self) -> None:
        self.seen_pids |= kill_trees(self._cgroups, self.name)

    def _remove_cgroups(self) -> None:
        remove_trees(self._cgroups)
        self._cgroups = [c for c in self._cgroups if c.exists()]

    def _delete_node_object(self) -> None:
        if self.rig.control_plane is None or not self.rig.control_plane.apiserver.running():
            return
        with contextlib.suppress(Exception):
            self.rig.kubectl("delete", "node", self.name, "--ignore-not-found", "--wait=false")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ip": self.ip if self.namespace else None,
            "netns": self.netns if self.namespace else None,
            "cgroup": self.cgroup,
            "pod_range": self.pod_range(),
            "holder": self.holder.pid if self.holder and self.holder.popen else None,
        }


def cleanup_after(bridge: str) -> None:
    """Remove what real nodes of the rig on ``bridge`` left when their process died.

    For ``python -m quiesce.rig down``: every process in those nodes' cgroups
    (holders, containerd, the kubelet, shims, containers) is killed, the
    cgroups are removed, and the host's settings are restored if no other
    node is alive. The rig's own teardown deletes the network namespaces.
    """
    tops = [d for h in cgroup_hierarchies() for d in h.glob(f"quiesce-{bridge}-*") if d.is_dir()]
    if tops:
        kill_trees(tops, f"real nodes on {bridge}")
        remove_trees(tops)
    host.recover()
