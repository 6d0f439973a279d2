"""A real node beside the node agent: kubelet, containerd and runc on the rig's API server.

The node joins the session rig in namespaces of its own (see
``docs/real-node.md``); a pod with an httpGet readiness probe and an exec
preStop hook runs on it, becomes Ready, and is deleted: the kubelet runs the
hook to completion, then sends SIGTERM, and the container exits on its own.
Then the node is torn down and the host must be as it was: processes,
mounts, cgroups, links, network namespaces, fixed paths and kernel settings.

The tests run in file order and share one node (module scope); the last one
stops it and checks the host.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from quiesce.rig import rig
from quiesce.rig.realnode import host, images, kubelet
from quiesce.rig.realnode.cgroups import cgroup_hierarchies
from quiesce.rig.realnode.node import RealNode

T = TypeVar("T")
NAMESPACE = "realnode"

# sysctls that move by themselves (counters, entropy, other sessions' ttys).
VOLATILE = re.compile(
    r"^(kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|fs\.(aio-nr|dentry-state|file-nr|inode-nr|"
    r"inode-state|quota\.)|net\.netfilter\.nf_conntrack_count|kernel\.sched_domain|"
    r"net\.(ipv4|ipv6)\.(conf|neigh)\.(?!all\.|default\.))"
)

# The per-link trees under these; only their "all" and "default" are settings to compare.
LINK_TREES = {f"net.{ip}.{tree}" for ip in ("ipv4", "ipv6") for tree in ("conf", "neigh")}

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: {namespace}}}
spec:
  nodeName: {node}
  tolerations: [{{key: {taint}, operator: Exists, effect: NoSchedule}}]
  terminationGracePeriodSeconds: 30
  volumes: [{{name: events, hostPath: {{path: {events}, type: Directory}}}}]
  containers:
  - name: app
    image: {image}
    imagePullPolicy: Never
    command: [/bin/sh, -c, {script}]
    ports: [{{containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /index.html, port: 8080}}
      periodSeconds: 1
    lifecycle:
      preStop:
        exec:
          command:
          - /bin/sh
          - -c
          - echo prestop-start >> /events/log; sleep 2; echo prestop-end >> /events/log
    volumeMounts: [{{name: events, mountPath: /events}}]
"""

APP = r"""
mkdir -p /tmp/www && echo ok > /tmp/www/index.html
httpd -f -v -p 8080 -h /tmp/www &
httpd=$!
trap 'echo term >> /events/log; kill $httpd; echo exit >> /events/log; exit 0' TERM
echo started >> /events/log
while true; do sleep 1 & wait $!; done
"""


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


# --- what "the host as before" means -------------------------------------------
def sysctls() -> dict[str, str]:
    """Every kernel setting, read with os.walk: other rigs' links come and go meanwhile.

    A directory that vanishes mid-walk (another test's veth deleted) is skipped,
    and the per-link trees are not entered at all: they are VOLATILE.
    """
    values = {}
    for top, dirs, files in os.walk("/proc/sys", onerror=lambda _: None):
        prefix = ".".join(Path(top).relative_to("/proc/sys").parts)
        if prefix in LINK_TREES:
            dirs[:] = [d for d in dirs if d in ("all", "default")]
        for name in files:
            key = f"{prefix}.{name}" if prefix else name
            if VOLATILE.match(key):
                continue
            try:
                values[key] = Path(top, name).read_text().strip()
            except OSError:
                continue
    return values


def mounts() -> set[tuple[str, str]]:
    found = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        found.add((fields[4], fields[fields.index("-") + 1]))
    return found


def links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def rules() -> list[str]:
    """The host's iptables rules (every table; counters and timestamps left out)."""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return [re.sub(r"\[\d+:\d+\]", "", line) for line in out.splitlines() if line[:1] != "#"]


def top_cgroups() -> set[str]:
    return {str(d) for h in cgroup_hierarchies() for d in h.iterdir() if d.is_dir()}


def snapshot() -> dict[str, Any]:
    return {
        "sysctls": sysctls(),
        "mounts": mounts(),
        "links": links(),
        "netns": netns(),
        "rules": rules(),
        "cgroups": top_cgroups(),
        "paths": {p: os.path.exists(p) for p in host.PRIVATE_PATHS},
    }


def others(name: str, prefix: str) -> bool:
    """Whether a link or netns name belongs to another rig on this machine."""
    m = re.match(r"^(q[0-9a-f]{3})", name)
    return bool(m) and m.group(1) != prefix


def processes_in(kind: str, ns_id: str) -> list[str]:
    """The processes (pid and command line) in namespace ``ns_id`` of ``kind``."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.readlink(d / "ns" / kind) == ns_id:
                    cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                    found.append(f"{d.name}: {cmd}")
            except OSError:
                continue
    return found


# --- fixtures ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def before(rig_instance: rig.Rig) -> dict[str, Any]:
    first = snapshot()
    time.sleep(1)
    second = snapshot()
    # Keys that moved within a second are noise, not settings.
    moving = {k for k in first["sysctls"] if first["sysctls"].get(k) != second["sysctls"].get(k)}
    second["moving"] = moving
    return second


@pytest.fixture(scope="module")
def node(rig_instance: rig.Rig, before: dict[str, Any]) -> Iterator[RealNode]:
    n = RealNode.start(rig_instance)
    print(f"\nreal node {n.name} ({n.ip}) Ready in {n.started_seconds:.1f} s")
    rig_instance.kubectl("create", "namespace", NAMESPACE)
    yield n
    n.stop()  # idempotent: the last test already stopped it
    rig_instance.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


# --- tests ------------------------------------------------------------------------
def test_the_node_registers_ready_with_its_own_address(node: RealNode) -> None:
    obj = node.node_object()
    assert obj is not None
    addresses = {a["type"]: a["address"] for a in obj["status"]["addresses"]}
    assert addresses["InternalIP"] == node.ip
    assert node.ip != node.rig.network.host_ip
    # The pods' addresses are the node's while it lives: the rig hands none of them out.
    assert set(node.pod_addresses()) & set(node.rig.network._free) == set()
    info = obj["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.37.2"
    assert info["containerRuntimeVersion"].startswith("containerd://")
    taints = {t["key"]: t["effect"] for t in obj["spec"].get("taints", [])}
    assert taints.get(kubelet.TAINT_KEY) == "NoSchedule"
    # The kubelet changed the global kernel settings it wants (restored at teardown).
    assert host.read_sysctl("vm.overcommit_memory") == "1"
    assert host.read_sysctl("kernel.panic") == "10"


def test_a_pod_runs_ready_and_stops_after_its_prestop_hook(node: RealNode, tmp_path: Path) -> None:
    r = node.rig
    events = tmp_path / "events"
    events.mkdir()
    manifest = POD.format(
        namespace=NAMESPACE,
        node=node.name,
        taint=kubelet.TAINT_KEY,
        events=events,
        image=images.BUSYBOX_IMAGE,
        script=json.dumps(APP),
    )
    r.kubectl("apply", "-f", "-", input=manifest)

    def ready() -> dict[str, Any] | None:
        pod = json.loads(r.kubectl("get", "pod", "web", "-n", NAMESPACE, "-o", "json").stdout)
        conds = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        ok = pod["status"].get("phase") == "Running" and conds.get("Ready") == "True"
        return pod if ok else None

    pod = wait_for("the pod to be Running and Ready", ready, timeout=120)
    status = pod["status"]
    assert status["hostIP"] == node.ip
    first, last = node.pod_range()
    addresses = [ipaddress.ip_address(a) for a in (first, status["podIP"], last)]
    assert addresses[0] <= addresses[1] <= addresses[2], f"pod IP not in {first}-{last}"
    # The readiness probe came from the node's own address (httpd -v logs each client).
    logs = r.kubectl("logs", "web", "-n", NAMESPACE).stdout
    assert node.ip in logs, logs
    # The pod's address is reachable from the rig's client namespace (the load balancers').
    got = r.network.client.run(
        ["curl", "-s", "--max-time", "5", f"http://{status['podIP']}:8080/index.html"],
        capture_output=True,
        text=True,
    )
    assert got.stdout.strip() == "ok"

    r.kubectl("delete", "pod", "web", "-n", NAMESPACE, "--wait=true", "--timeout=90s", timeout=120)
    lines = (events / "log").read_text().split()
    # The kubelet ran the hook to completion before SIGTERM; the app then exited by itself
    # (a SIGKILL at the end of the grace period would have left no "exit").
    assert lines == ["started", "prestop-start", "prestop-end", "term", "exit"], lines
    wait_for(
        "no container left running",
        lambda: node.crictl("ps", "-q").stdout.strip() == "",
        timeout=30,
    )


def test_a_second_node_runs_beside_and_leaves_without_undoing_the_first(node: RealNode) -> None:
    second = RealNode.start(node.rig, "rig-real-2", 2)
    try:
        assert second.ip != node.ip
        assert set(second.pod_addresses()).isdisjoint(node.pod_addresses())
        obj = second.node_object()
        assert obj is not None
        assert {a["type"]: a["address"] for a in obj["status"]["addresses"]}["InternalIP"] == (
            second.ip
        )
        netns_name, cgroups = second.netns, list(second._cgroups)
    finally:
        second.stop()
    assert netns_name not in netns()
    assert [c for c in cgroups if c.exists()] == []
    assert second.node_object() is None
    # The first node still runs, so the kernel settings stay the kubelet's until it leaves.
    assert host.read_sysctl("kernel.panic") == "10"
    assert node.ready()
    assert node.crictl("info").returncode == 0


def test_teardown_leaves_the_host_as_before(node: RealNode, before: dict[str, Any]) -> None:
    prefix = node.rig.network.prefix
    node_netns, holder = node.netns, node.holder
    assert holder is not None
    mnt_ns = os.readlink(f"/proc/{holder.pid}/ns/mnt")
    net_ns = os.readlink(f"/proc/{holder.pid}/ns/net")
    # Held open, the namespaces cannot be freed, so their ids are not reused by
    # other work on this machine while the test looks for processes in them.
    held = [os.open(f"/proc/{holder.pid}/ns/{kind}", os.O_RDONLY) for kind in ("mnt", "net")]
    during = {k: host.read_sysctl(k) for k in host.SYSCTLS}
    try:
        node.stop()
        assert processes_in("mnt", mnt_ns) == []
        assert processes_in("net", net_ns) == []
    finally:
        for fd in held:
            os.close(fd)
    after = snapshot()

    alive = [p for p in node.seen_pids if Path(f"/proc/{p}").exists() and rig._alive(p)]
    assert alive == [], f"processes of the node still alive: {alive}"
    assert [m for m in after["mounts"] if Path(m[0]).is_relative_to(node.dir)] == []
    new_mounts = {
        m for m in after["mounts"] - before["mounts"] if not others(Path(m[0]).name, prefix)
    }
    assert new_mounts == set()
    new_links = {name for name in after["links"] - before["links"] if not others(name, prefix)}
    assert new_links == set()
    assert node_netns not in after["netns"]
    assert after["cgroups"] - before["cgroups"] == set()
    assert after["rules"] == before["rules"]
    assert after["paths"] == before["paths"]
    changed = {
        k: (v, after["sysctls"].get(k))
        for k, v in before["sysctls"].items()
        if k not in before["moving"] and after["sysctls"].get(k) != v
    }
    assert changed == {}
    assert {k: host.read_sysctl(k) for k in host.SYSCTLS} == {
        k: before["sysctls"][k] for k in host.SYSCTLS
    }
    assert during != {k: before["sysctls"][k] for k in host.SYSCTLS}, "the kubelet changed nothing?"
    assert node.node_object() is None
    assert set(node.pod_addresses()) <= set(node.rig.network._free)
