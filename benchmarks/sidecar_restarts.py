"""The sidecar over many restart sequences: does it stay bounded? (issue 16)

A container kill that is not a pod deletion (a liveness restart) is classified
``restart``: the sidecar puts Consul maintenance on for the pod's instances,
converges, and once the app container runs and is ready again (a new
containerID) lifts the maintenance and re-arms for the next kill. A pod whose
probe restarts it all day must not grow the sidecar, so this benchmark runs
``--sequences`` (default 100) such cycles against one real ``quiesce sidecar``
process and records its RSS, the size of ``/status`` and of its log.

What runs, all on the rig (real kube-apiserver, real Consul dev agent):

* a pod object held by a finalizer on a Node no kubelet serves (it tolerates the
  Node's unreachable taint forever: nothing evicts it during the run), with a
  service account bound to the rules of manifests/rbac/sidecar-clusterrole.yaml;
* one instance of service ``rbench`` on the Consul agent, address = the pod IP,
  meta naming the pod, a passing TTL check;
* ``quiesce sidecar`` (the CLI entry point) in a rig pod sandbox whose IP is the
  pod's, talking to both;
* per sequence: ``GET /prestop`` as the kubelet would (returns when the sequence
  is done), check that ``/status`` shows a new sequence of kind ``restart`` and
  that Consul's health query no longer lists the instance, then patch the pod's
  status as the kubelet would after a restart (a new containerID, restartCount
  + 1, running and ready) and wait until ``/status`` shows the maintenance lifted
  and Consul lists the instance again.

Writes the ``## sidecar over restart sequences`` section of docs/benchmarks.md.

    .venv/bin/python benchmarks/sidecar_restarts.py [--sequences 100] [--no-write]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report
import yaml
from sidecar_footprint import free_port, rss_kb

from quiesce import plan
from quiesce.rig import consul, controlplane, kubeapi, network, rig

REPO = Path(__file__).resolve().parent.parent
QUIESCE = Path(sys.executable).with_name("quiesce")
SIDECAR_RULES = REPO / "manifests" / "rbac" / "sidecar-clusterrole.yaml"
TOKEN = "rbench-token"
SERVICE = "rbench"
POD = "web-0"
HEADING = "sidecar over restart sequences"
BOUND_KB = 1024
"""RSS growth from sequence 10 to the last that still counts as bounded (1 MB)."""


class BenchmarkError(RuntimeError):
    """The benchmark did not measure what it claims to: stop, say why."""


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def wait_until(
    what: str, check: Callable[[], bool], *, timeout: float, every: float = 0.05
) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise BenchmarkError(f"timed out after {timeout:g} s waiting until {what}")
        time.sleep(every)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def plan_json(port: int, *, converge_max: float, quiet_window: float) -> str:
    """A real ShutdownPlan; the margin absorbs rounding so the budget identity holds."""
    deregister_timeout = 1.0
    phases = deregister_timeout + converge_max  # no kept hook, no drain
    grace = math.ceil(phases + 2.0)
    return plan.ShutdownPlan(
        version=plan.FORMAT_VERSION,
        converge_min=0.0,
        quiet_window=quiet_window,
        margin=grace - phases,
        grace_period_seconds=grace,
        grace_source="derived",
        template_grace=None,
        signal=None,
        shutdown_url=None,
        containers=(),
        port=port,
        consul_services=(),
        long_lived_ports=(),
        probe_ports=(),
        kept_hook=None,
        sleep_absorbed=0.0,
        exec_hook_replaced=False,
        sidecar_mode="container",
        auto_upgrade=False,
        epsilon=1e-3,
        deregister_timeout=deregister_timeout,
        converge_max=converge_max,
        kept_hook_timeout=0.0,
        drain_timeout=0.0,
    ).to_json()


class Cluster:
    """A namespace, a Node no kubelet serves, a service account, and one pod held by a finalizer.

    The minimal part of tests/sidecar/test_kube_api.py's ``Cluster`` (benchmarks never
    import from tests/).
    """

    def __init__(self, cp: controlplane.ControlPlane) -> None:
        self.cp = cp
        self.api: kubeapi.ApiClient = cp.api()
        self.ns = f"rbench-{secrets.token_hex(3)}"
        self.node = f"quiesce-rbench-{secrets.token_hex(3)}"
        self.pods = f"/api/v1/namespaces/{self.ns}/pods"
        self.uid = ""
        self.restarts = 0
        self.container_id = ""
        self.made_namespace = self.made_node = False

    def create(self, workdir: Path, pod_ip: str) -> Path:
        """Everything; returns the service-account directory for the sidecar."""
        self.api.create("/api/v1/namespaces", {"metadata": {"name": self.ns}})
        self.made_namespace = True
        # a Node no kubelet (and no node agent) serves: the pod is bound, nothing runs it
        self.api.create("/api/v1/nodes", {"metadata": {"name": self.node}})
        self.made_node = True
        sa = self._service_account(workdir)
        pod = self.api.create(
            self.pods,
            {
                "metadata": {
                    "name": POD,
                    "labels": {"app": SERVICE},
                    "finalizers": ["quiesce.dev/test-hold"],
                },
                "spec": {
                    "nodeName": self.node,
                    "containers": [{"name": "app", "image": "app:1"}],
                    # the Node never reports Ready, so it is tainted unreachable after ~40 s;
                    # the default toleration (300 s) would have the pod evicted mid-run
                    "tolerations": [
                        {"key": f"node.kubernetes.io/{key}", "operator": "Exists"}
                        for key in ("unreachable", "not-ready")
                    ],
                },
            },
        )
        self.uid = str(pod["metadata"]["uid"])
        self.set_running(pod_ip, new_container=True)
        return sa

    def _service_account(self, workdir: Path) -> Path:
        name = "web"
        api, ns = self.api, self.ns
        api.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": name}})
        # the rules the operator binds an injected sidecar to, as shipped
        rules = yaml.safe_load(SIDECAR_RULES.read_text())["rules"]
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
        api.create(f"{rbac}/roles", {"metadata": {"name": "quiesce-sidecar"}, "rules": rules})
        api.create(
            f"{rbac}/rolebindings",
            {
                "metadata": {"name": "quiesce-sidecar"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "quiesce-sidecar",
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            },
        )
        token = api.create(
            f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
            {"spec": {"expirationSeconds": 3 * 3600}},
        )["status"]["token"]
        sa = workdir / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text(token)
        (sa / "ca.crt").write_bytes(Path(self.cp.ca.cert_path).read_bytes())
        return sa

    def set_running(self, pod_ip: str, *, new_container: bool) -> None:
        """The pod's status as the kubelet writes it once the app (re)started and is ready."""
        if new_container:
            if self.container_id:
                self.restarts += 1
            self.container_id = secrets.token_hex(32)
        now = now_iso()
        status: dict[str, Any] = {
            "phase": "Running",
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [
                {
                    "name": "app",
                    "image": "app:1",
                    "imageID": "",
                    "ready": True,
                    "restartCount": self.restarts,
                    "containerID": f"containerd://{self.container_id}",
                    "state": {"running": {"startedAt": now}},
                    **(
                        {
                            "lastState": {
                                "terminated": {
                                    "exitCode": 137,
                                    "reason": "Error",
                                    "startedAt": now,
                                    "finishedAt": now,
                                }
                            }
                        }
                        if self.restarts
                        else {}
                    ),
                }
            ],
        }
        self.api.merge_patch(f"{self.pods}/{POD}/status", {"status": status})

    def pod(self) -> dict[str, Any]:
        result: dict[str, Any] = self.api.get(f"{self.pods}/{POD}")
        return result

    def cleanup(self) -> None:
        if self.made_namespace:
            try:
                pods = self.api.get(self.pods)["items"]
                for pod in pods:
                    name = pod["metadata"]["name"]
                    self.api.merge_patch(f"{self.pods}/{name}", {"metadata": {"finalizers": None}})
            finally:
                self.api.request("DELETE", f"/api/v1/namespaces/{self.ns}")
        if self.made_node:
            self.api.request("DELETE", f"/api/v1/nodes/{self.node}")


class Sidecar:
    """``quiesce sidecar`` as a process in a rig pod sandbox, its log in a file."""

    def __init__(
        self,
        sandbox: network.PodSandbox,
        *,
        host_ip: str,
        cluster: Cluster,
        consul_agent: consul.ConsulAgent,
        service_account: Path,
        log_path: Path,
        converge_max: float,
        quiet_window: float,
    ) -> None:
        self.ip = sandbox.ip
        self.port = free_port()
        self.log_path = log_path
        server = urllib.parse.urlparse(cluster.cp.server)
        assert server.hostname and server.port
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("QUIESCE_", "CONSUL_", "KUBERNETES_"))
        }
        env.update(
            QUIESCE_PLAN=plan_json(self.port, converge_max=converge_max, quiet_window=quiet_window),
            QUIESCE_TOKEN=TOKEN,
            POD_NAME=POD,
            POD_NAMESPACE=cluster.ns,
            POD_UID=cluster.uid,
            POD_IP=sandbox.ip,
            HOST_IP=host_ip,
            QUIESCE_LOG_FORMAT="json",
            CONSUL_HTTP_ADDR=consul_agent.http_addr,
            QUIESCE_CONSUL_BACKEND="agent",
            KUBERNETES_SERVICE_HOST=server.hostname,
            KUBERNETES_SERVICE_PORT=str(server.port),
            QUIESCE_SERVICE_ACCOUNT_DIR=str(service_account),
        )
        self._log = log_path.open("wb")
        self.proc = sandbox.popen(
            [str(QUIESCE), "sidecar"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_until("the sidecar answers /readyz", self._ready, timeout=60, every=0.05)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise BenchmarkError(
                f"the sidecar exited with {self.proc.returncode}: {self.log_tail()}"
            )
        try:
            return self.get("/readyz", timeout=1.0)[0] == 200
        except OSError:
            return False

    def get(self, path: str, *, timeout: float = 10.0, token: bool = False) -> tuple[int, bytes]:
        headers = {"X-Quiesce-Token": TOKEN} if token else {}
        req = urllib.request.Request(f"http://{self.ip}:{self.port}{path}", headers=headers)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())

    def status(self) -> tuple[dict[str, Any], int]:
        """``/status`` as JSON, and its size in bytes."""
        code, body = self.get("/status")
        if code != 200:
            raise BenchmarkError(f"/status answered {code}: {body[:200]!r}")
        result: dict[str, Any] = json.loads(body)
        return result, len(body)

    def rss_kb(self) -> int:
        if self.proc.poll() is not None:
            raise BenchmarkError(f"the sidecar exited with {self.proc.returncode}")
        return rss_kb(self.proc.pid)

    def log_bytes(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # SIGINT: exit now, no sequence
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def register_instance(agent: consul.ConsulAgent, cluster: Cluster, pod_ip: str) -> str:
    """One instance of the pod in the agent, found by its meta (and its address), passing."""
    service_id = f"{SERVICE}-{POD}"
    agent.register(
        {
            "ID": service_id,
            "Name": SERVICE,
            "Address": pod_ip,
            "Port": 8080,
            "Meta": {"pod-name": POD, "k8s-namespace": cluster.ns, "pod-uid": cluster.uid},
            # a TTL check, passing from the start and for longer than the run
            "Check": {"CheckID": f"{service_id}-ttl", "TTL": "3h", "Status": "passing"},
        }
    )
    return service_id


def passing(agent: consul.ConsulAgent, service_id: str) -> bool:
    """Does Consul's health-filtered query (what DNS and ``?passing`` users see) list it?"""
    return any(e["Service"]["ID"] == service_id for e in agent.healthy_instances(SERVICE))


def lifted(status: dict[str, Any], number: int) -> bool:
    return status.get("sequence") == number and any(
        u.get("action") == "maintenance off" for u in status.get("undid") or []
    )


def one_sequence(
    sc: Sidecar, cluster: Cluster, agent: consul.ConsulAgent, service_id: str, expected: int
) -> dict[str, Any]:
    """One restart: /prestop, checks, the app back with a new container, maintenance lifted."""
    started = time.monotonic()
    code, body = sc.get("/prestop", token=True, timeout=60)
    answered = time.monotonic()
    if code != 200:
        raise BenchmarkError(f"/prestop answered {code}: {body[:300]!r}")
    status, _ = sc.status()
    kind = (status.get("classification") or {}).get("kind")
    if status.get("sequence") != expected or status.get("state") != "done" or kind != "restart":
        raise BenchmarkError(
            f"sequence {expected}: /status shows sequence {status.get('sequence')}, state "
            f"{status.get('state')}, kind {kind!r} ({status.get('classification')}): not a "
            f"finished restart sequence; sidecar log:\n{sc.log_tail()}"
        )
    if status.get("errors"):
        raise BenchmarkError(f"sequence {expected} had errors: {status['errors']}")
    if passing(agent, service_id):
        raise BenchmarkError(
            f"sequence {expected}: Consul still lists {service_id} as passing after /prestop "
            "(no maintenance?)"
        )
    # the kubelet restarted the app container: a new containerID, running and ready
    patched = time.monotonic()
    cluster.set_running(sc.ip, new_container=True)

    def is_lifted() -> bool:
        return lifted(sc.status()[0], expected)

    wait_until(f"sequence {expected}'s maintenance is lifted", is_lifted, timeout=30)
    seen = time.monotonic()
    if not passing(agent, service_id):
        raise BenchmarkError(
            f"sequence {expected}: /status says maintenance off but Consul does not list "
            f"{service_id} as passing"
        )
    return {
        "prestop": answered - started,
        "lift": seen - patched,
        "cycle": seen - started,
        "reason": str((status.get("convergence") or {}).get("reason")),
        "warnings": sorted({str(w.get("warning")) for w in status.get("warnings") or []}),
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    r = rig.Rig.start(workdir / "rig")
    cluster: Cluster | None = None
    sandbox: network.PodSandbox | None = None
    sc: Sidecar | None = None
    service_id: str | None = None
    try:
        assert r.control_plane is not None and r.consul is not None
        agent = r.consul
        sandbox = r.network.sandbox("rbench")
        cluster = Cluster(r.control_plane)
        sa = cluster.create(workdir, sandbox.ip)
        service_id = register_instance(agent, cluster, sandbox.ip)
        wait_until(
            "Consul lists the instance as passing",
            lambda: passing(agent, service_id or ""),
            timeout=10,
        )
        sc = Sidecar(
            sandbox,
            host_ip=r.network.host_ip,
            cluster=cluster,
            consul_agent=agent,
            service_account=sa,
            log_path=workdir / "sidecar.log",
            converge_max=args.converge_max,
            quiet_window=args.quiet_window,
        )
        time.sleep(1)
        status, status_bytes = sc.status()
        if status.get("state") != "idle":
            raise BenchmarkError(f"a fresh sidecar is not idle: {status}")
        ready = {"rss_kb": sc.rss_kb(), "status_bytes": status_bytes, "log_bytes": sc.log_bytes()}
        say(f"sidecar ready: RSS {ready['rss_kb'] / 1024:.1f} MB")
        checkpoints = sorted({n for n in (1, 10, 50, args.sequences) if n <= args.sequences})
        at: dict[int, dict[str, int]] = {}
        times: list[dict[str, Any]] = []
        rss_all: list[int] = []
        for n in range(1, args.sequences + 1):
            times.append(one_sequence(sc, cluster, agent, service_id, n))
            rss_all.append(sc.rss_kb())
            if n in checkpoints:
                status, status_bytes = sc.status()
                history = status.get("history") or []
                at[n] = {
                    "rss_kb": rss_all[-1],
                    "status_bytes": status_bytes,
                    "log_bytes": sc.log_bytes(),
                    "history": len(history),
                }
                say(
                    f"sequence {n}: RSS {at[n]['rss_kb'] / 1024:.1f} MB, /status "
                    f"{status_bytes:,} B ({len(history)} in history), log {at[n]['log_bytes']:,} B,"
                    f" cycle {times[-1]['cycle']:.2f} s"
                )
        pod = cluster.pod()
        restart_count = pod["status"]["containerStatuses"][0]["restartCount"]
        if restart_count != args.sequences or pod["metadata"].get("deletionTimestamp"):
            raise BenchmarkError(f"the pod is not as the benchmark left it: {pod['status']}")
        reasons = collections.Counter(t["reason"] for t in times)
        warnings = collections.Counter(w for t in times for w in t["warnings"])
        return {
            "ready": ready,
            "reasons": dict(reasons),
            "warnings": dict(warnings),
            "at": at,
            "times": times,
            "rss_max_kb": max(rss_all),
            "rss_min_kb": min(rss_all),
        }
    except BaseException:
        if sc is not None:
            print(f"sidecar log tail:\n{sc.log_tail(40)}", file=sys.stderr)
        raise
    finally:
        if sc is not None:
            sc.stop()
        if service_id is not None and r.consul is not None:
            try:
                r.consul.deregister(service_id)
            except OSError as exc:
                print(f"could not deregister {service_id}: {exc}", file=sys.stderr)
        if cluster is not None:
            try:
                cluster.cleanup()
            except (OSError, kubeapi.ApiError) as exc:
                print(f"could not clean up {cluster.ns}: {exc}", file=sys.stderr)
        if sandbox is not None and sandbox.name in r.network.namespaces:
            sandbox.remove()
        r.stop()


def section(args: argparse.Namespace, machine: str, res: dict[str, Any]) -> str:
    at: dict[int, dict[str, int]] = res["at"]
    points = sorted(at)
    last = points[-1]
    base = 10 if 10 in at and last > 10 else points[0]
    growth_kb = at[last]["rss_kb"] - at[base]["rss_kb"]
    bounded = growth_kb < BOUND_KB
    times = res["times"]

    def median(key: str) -> float:
        return float(statistics.median(t[key] for t in times))

    def mb(kb: int) -> str:
        return f"{kb / 1024:.1f}"

    ready = res["ready"]
    header = "| measured | ready (no sequence yet) | " + " | ".join(
        f"after sequence {n}" for n in points
    )
    rows = [
        header + " |",
        "|---|---|" + "---|" * len(points),
        f"| sidecar RSS, MB | {mb(ready['rss_kb'])} | "
        + " | ".join(mb(at[n]["rss_kb"]) for n in points)
        + " |",
        f"| `/status`, bytes | {ready['status_bytes']:,} | "
        + " | ".join(f"{at[n]['status_bytes']:,}" for n in points)
        + " |",
        "| sequences in `/status` history | 0 | "
        + " | ".join(str(at[n]["history"]) for n in points)
        + " |",
        f"| sidecar log, bytes | {ready['log_bytes']:,} | "
        + " | ".join(f"{at[n]['log_bytes']:,}" for n in points)
        + " |",
    ]
    per_sequence_log = (at[last]["log_bytes"] - at[points[0]]["log_bytes"]) / max(
        last - points[0], 1
    )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(res["reasons"].items()))
    warnings = "; ".join(f"{w!r} ({n})" for w, n in sorted(res["warnings"].items())) or "none"
    first_step_mb = (at[points[0]]["rss_kb"] - ready["rss_kb"]) / 1024
    explain = (
        " (no process of the app exists: the containerIDs in the pod's status name no"
        " container on this machine)"
        if any("no process in the app container" in w for w in res["warnings"])
        else ""
    )
    verdict = (
        f"RSS {'stayed bounded' if bounded else 'did NOT stay bounded'}: "
        f"{growth_kb / 1024:+.2f} MB from sequence {base} to {last} "
        f"({'under' if bounded else 'over'} the 1 MB allowed); over all {args.sequences} "
        f"sequences it ranged {mb(res['rss_min_kb'])}–{mb(res['rss_max_kb'])} MB, "
        + ("above" if res["rss_max_kb"] > 40 * 1024 else "within")
        + " the 40 MB that issue 6 sets for the idle sidecar (sidecar footprint)."
    )
    command = "python benchmarks/sidecar_restarts.py"
    if args.sequences != 100:
        command += f" --sequences {args.sequences}"
    return f"""## {HEADING}

`{command}` on {report.today()}: {args.sequences} restart sequences (issue 16), one real
`quiesce sidecar` process.

- machine: {machine}
- what runs: `quiesce sidecar` (the CLI entry point, this venv's Python) in a rig pod sandbox
  whose IP is the pod's; the rig's kube-apiserver holds the pod (Running, on a Node no
  kubelet serves, held by a finalizer; service account bound to the shipped sidecar rules)
  and its Consul dev agent one instance of the pod (meta names the pod, TTL check passing);
  Consul backend `agent`; plan: converge-min 0, converge-max {args.converge_max:g} s,
  quiet window {args.quiet_window:g} s
- each sequence: `GET /prestop` with the token (returns when the sequence is done);
  `/status` must show the next sequence number, state `done`, kind `restart`, and Consul's
  `?passing` query must no longer list the instance (maintenance on); then the pod's status
  is patched as the kubelet writes it after a restart (new containerID, restartCount + 1,
  running, ready) and the benchmark waits until `/status` shows `maintenance off` in
  `undid` and Consul lists the instance as passing again (the Keeper polls the pod every
  0.5 s); any other outcome stops the benchmark

{chr(10).join(rows)}

Wall time per sequence, median of {len(times)}: `/prestop` answered in {median("prestop"):.2f} s;
maintenance lifted {median("lift"):.2f} s after the pod showed the new container; a whole
restart cycle {median("cycle"):.2f} s.
Convergence ended by: {reasons} (no traffic reaches the pod, so the adaptive quiet window
is the ceiling: silence proves nothing). Warnings in the sequences' timelines, with how many
sequences had each: {warnings}{explain}.
The log grows ~{per_sequence_log:,.0f} bytes per sequence (JSON lines; the container
runtime rotates it); `/status` keeps the running sequence in full and the
{max(at[n]["history"] for n in points)} before it briefly.
{verdict}
The step from ready to sequence 1 ({first_step_mb:+.1f} MB) is what the first sequence
loads once: py-consul (imported only when a sequence starts, ~6 MB by
quiesce/sidecar/consul_backend.py's account) and its client.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=100, help="restart sequences to run")
    parser.add_argument("--converge-max", type=float, default=1.0, help="the plan's ceiling, s")
    parser.add_argument("--quiet-window", type=float, default=0.2, help="the plan's minimum, s")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.sequences < 1:
        parser.error("--sequences must be at least 1")
    machine = report.machine()
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-restarts-"))
    started = time.monotonic()
    try:
        res = run(args, workdir)
    except BaseException:
        print(f"rig and sidecar logs kept in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    say(f"{args.sequences} sequences in {time.monotonic() - started:.0f} s (rig start included)")
    print(json.dumps({k: v for k, v in res.items() if k != "times"}, indent=2))
    block = section(args, machine, res)
    if not args.no_write:
        report.write_section(HEADING, block)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
