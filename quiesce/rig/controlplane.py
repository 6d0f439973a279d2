"""The real Kubernetes control plane: etcd, kube-apiserver, controller-manager, scheduler.

Each is the upstream binary (built by :mod:`quiesce.rig.binaries`), started
with the flags a kubeadm cluster would use, reduced to what a single-node
test cluster needs. The API server listens on the rig's bridge address, so
pods reach it as they reach ``KUBERNETES_SERVICE_HOST`` on a real cluster
(there is no kube-proxy: the service CIDR lies inside 198.18.0.0/15 and pods
are pointed at the real address).
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import sys
import urllib.request
from pathlib import Path

from quiesce.rig import binaries, kubeapi, pki, process

NODE_NAME = "rig-node-1"
# The control plane is niced so the workload under test gets the CPU first
# on this 2-core machine (design: "Noise").
NICE = 5


@dataclasses.dataclass
class ControlPlane:
    workdir: Path
    host_ip: str
    service_cidr: str
    etcd: process.ManagedProcess
    apiserver: process.ManagedProcess
    controller_manager: process.ManagedProcess
    scheduler: process.ManagedProcess
    node_heartbeat: process.ManagedProcess
    server: str
    kubeconfig: Path
    ca: pki.CertificateAuthority
    node_name: str = NODE_NAME

    @property
    def processes(self) -> list[process.ManagedProcess]:
        return [
            self.node_heartbeat,
            self.scheduler,
            self.controller_manager,
            self.apiserver,
            self.etcd,
        ]

    def api(self) -> kubeapi.ApiClient:
        pki_dir = self.workdir / "pki"
        return kubeapi.ApiClient(
            self.server, ca=self.ca.cert_path, cert=pki_dir / "admin.crt", key=pki_dir / "admin.key"
        )

    def stop(self) -> None:
        for p in self.processes:
            p.stop()


def _get_json(url: str, context: ssl.SSLContext | None = None) -> object:
    with urllib.request.urlopen(url, context=context, timeout=2) as resp:
        return json.loads(resp.read() or b"null")


def _get_ok(url: str, context: ssl.SSLContext) -> bool:
    with urllib.request.urlopen(url, context=context, timeout=2) as resp:
        return bool(resp.status == 200)


def _insecure() -> ssl.SSLContext:
    # Controller-manager and scheduler serve /healthz with a self-signed cert.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def start(workdir: Path, *, host_ip: str, service_cidr: str, timeout: float = 60.0) -> ControlPlane:
    """Start the whole control plane and return once every part is ready."""
    logs = workdir / "logs"
    pki_dir = workdir / "pki"
    ca = pki.CertificateAuthority(pki_dir)
    service_ip = service_cidr.rsplit(".", 1)[0] + ".1"
    names = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "127.0.0.1",
        host_ip,
        service_ip,
    ]
    serving_crt, serving_key = ca.issue(
        "apiserver", common_name="kube-apiserver", server_names=names, client=False
    )
    sa_key, sa_pub = pki.service_account_keys(pki_dir)
    apiserver_port = process.free_port(host_ip)
    server = f"https://{host_ip}:{apiserver_port}"

    def identity(name: str, cn: str, orgs: tuple[str, ...] = ()) -> Path:
        crt, key = ca.issue(name, common_name=cn, organizations=orgs)
        return pki.kubeconfig(
            workdir / f"{name}.kubeconfig",
            server=server,
            ca=ca.cert_path,
            cert=crt,
            key=key,
            user=cn,
        )

    admin = identity("admin", "kubernetes-admin", ("system:masters",))
    cm_kubeconfig = identity("controller-manager", "system:kube-controller-manager")
    sched_kubeconfig = identity("scheduler", "system:kube-scheduler")
    node_crt, node_key = ca.issue(
        "node", common_name=f"system:node:{NODE_NAME}", organizations=("system:nodes",)
    )

    etcd_port, etcd_peer = process.free_port("127.0.0.1"), process.free_port("127.0.0.1")
    etcd = process.ManagedProcess(
        "etcd",
        [
            str(binaries.require("etcd")),
            "--data-dir",
            str(workdir / "etcd"),
            "--listen-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
        ],
        log=logs / "etcd.log",
        nice=NICE,
    ).start()
    started = [etcd]
    try:
        etcd.wait_ready(
            lambda: _get_json(f"http://127.0.0.1:{etcd_port}/health") is not None, timeout=timeout
        )

        apiserver = process.ManagedProcess(
            "kube-apiserver",
            [
                str(binaries.require("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--bind-address={host_ip}",
                f"--advertise-address={host_ip}",
                f"--secure-port={apiserver_port}",
                f"--service-cluster-ip-range={service_cidr}",
                f"--client-ca-file={ca.cert_path}",
                f"--tls-cert-file={serving_crt}",
                f"--tls-private-key-file={serving_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                # lifecycle.stopSignal (alpha in 1.37): the node agent honours it.
                "--feature-gates=ContainerStopSignals=true",
                # Real nodes (quiesce.rig.realnode): reach kubelets by their node IP.
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                "--profiling=false",
                "--v=1",
            ],
            log=logs / "kube-apiserver.log",
            nice=NICE,
        ).start()
        started.append(apiserver)
        ca_ctx = ssl.create_default_context(cafile=str(ca.cert_path))
        apiserver.wait_ready(lambda: _get_ok(f"{server}/readyz", ca_ctx), timeout=timeout)

        cm_port = process.free_port("127.0.0.1")
        controller_manager = process.ManagedProcess(
            "kube-controller-manager",
            [
                str(binaries.require("kube-controller-manager")),
                f"--kubeconfig={cm_kubeconfig}",
                f"--authentication-kubeconfig={cm_kubeconfig}",
                f"--authorization-kubeconfig={cm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={cm_port}",
                f"--cert-dir={workdir / 'controller-manager'}",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={ca.cert_path}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={service_cidr}",
                "--leader-elect=false",
                "--controllers=*",
                "--v=1",
            ],
            log=logs / "kube-controller-manager.log",
            nice=NICE,
        ).start()
        started.append(controller_manager)

        sched_port = process.free_port("127.0.0.1")
        scheduler = process.ManagedProcess(
            "kube-scheduler",
            [
                str(binaries.require("kube-scheduler")),
                f"--kubeconfig={sched_kubeconfig}",
                f"--authentication-kubeconfig={sched_kubeconfig}",
                f"--authorization-kubeconfig={sched_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--cert-dir={workdir / 'scheduler'}",
                "--leader-elect=false",
                "--v=1",
            ],
            log=logs / "kube-scheduler.log",
            nice=NICE,
        ).start()
        started.append(scheduler)

        node_heartbeat = process.ManagedProcess(
            "node-heartbeat",
            [
                sys.executable,
                "-m",
                "quiesce.rig.node",
                "--server",
                server,
                "--ca",
                str(ca.cert_path),
                "--cert",
                str(node_crt),
                "--key",
                str(node_key),
                "--node-name",
                NODE_NAME,
                "--node-ip",
                host_ip,
                "--kubelet-version",
                binaries.KUBERNETES_VERSION,
            ],
            log=logs / "node-heartbeat.log",
        ).start()
        started.append(node_heartbeat)

        insecure = _insecure()
        controller_manager.wait_ready(
            lambda: _get_ok(f"https://127.0.0.1:{cm_port}/healthz", insecure), timeout=timeout
        )
        scheduler.wait_ready(
            lambda: _get_ok(f"https://127.0.0.1:{sched_port}/healthz", insecure), timeout=timeout
        )
        admin_api = kubeapi.ApiClient(
            server, ca=ca.cert_path, cert=pki_dir / "admin.crt", key=pki_dir / "admin.key"
        )

        def node_ready() -> bool:
            node = admin_api.get(f"/api/v1/nodes/{NODE_NAME}")
            conds = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
            return conds.get("Ready") == "True"

        def default_service_account() -> bool:
            # Pods in "default" cannot be created before this exists.
            return bool(admin_api.get("/api/v1/namespaces/default/serviceaccounts/default"))

        node_heartbeat.wait_ready(node_ready, timeout=timeout, what="registered as a Ready Node")
        controller_manager.wait_ready(
            default_service_account, timeout=timeout, what="creating the default service account"
        )
    except BaseException:
        for p in reversed(started):
            p.stop()
        raise
    return ControlPlane(
        workdir=workdir,
        host_ip=host_ip,
        service_cidr=service_cidr,
        etcd=etcd,
        apiserver=apiserver,
        controller_manager=controller_manager,
        scheduler=scheduler,
        node_heartbeat=node_heartbeat,
        server=server,
        kubeconfig=admin,
        ca=ca,
    )
