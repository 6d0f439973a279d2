"""Benchmark the operator at cluster scale: 10,000 annotated Deployments on the rig.

Measures, with the real ``quiesce operator`` subprocess against the rig's real
API server and controller-manager:

* the operator's RSS idle, before any workload exists (the floor);
* seconds from the operator's start until every Deployment, created before it
  started (an install into a running cluster), is injected;
* its peak RSS, RSS per object, CPU seconds (from /proc);
* requests: quiesce's own (its metrics: writes, reads, retries), Events posted,
  and the API server's total request count while it injects (everyone's);
* a restart after convergence: seconds until all are re-listed, its CPU and
  peak RSS, and the writes it makes (must be 0).

Goals: all injected within 60 s, peak RSS within the chart's memory limit.
The result block replaces the ``## operator scale`` section of docs/benchmarks.md.

    .venv/bin/python benchmarks/operator_scale.py [--objects 10000] [--replicas 0] [--no-write]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import os
import pathlib
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

import report as docs_report  # benchmarks/report.py: the shared docs writer
import yaml

from quiesce import annotations as keys
from quiesce.rig import kubeapi, rig

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET_SECONDS = 60.0


def chart_limit_mib() -> int:
    """The operator's memory limit in the chart's values (the one source of that number)."""
    values = yaml.safe_load((ROOT / "charts" / "quiesce" / "values.yaml").read_text())
    limit = str(values["operator"]["resources"]["limits"]["memory"])
    if not limit.endswith("Mi"):
        raise ValueError(f"operator.resources.limits.memory: expected <n>Mi, got {limit!r}")
    return int(limit[:-2])


NAMESPACE = "bench"


def deployment(i: int, replicas: int) -> dict[str, Any]:
    name = f"web-{i:04d}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {keys.INJECT: "true"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.example/web:1",
                            "ports": [{"name": "http", "containerPort": 8080}],
                        }
                    ]
                },
            },
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample family, filtered by labels."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.match(r"^([a-zA-Z_:]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def apiserver_requests(api: kubeapi.ApiClient) -> float:
    return metric(str(api.get("/metrics")), "apiserver_request_total")


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cpu, peak


def start_operator(
    kubeconfig: pathlib.Path, port: int, log: pathlib.Path
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "quiesce",
        "operator",
        f"--kubeconfig={kubeconfig}",
        f"--namespace={NAMESPACE}",
        f"--metrics-port={port}",
        "--log-format=json",
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            scrape(port)
            return proc
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the operator did not start; see {log}")


def rss_now(pid: int) -> float:
    """Resident set size of a process now, MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stop_operator(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def wait_for_metric(port: int, name: str, target: float, timeout: float, **labels: str) -> float:
    """Seconds until the operator's metric reaches ``target`` (NaN on timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if metric(scrape(port), name, **labels) >= target:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    return float("nan")


def create_all(api: kubeapi.ApiClient, objects: int, replicas: int, clients: int) -> float:
    """Create every Deployment in parallel (as a CI pipeline would); seconds taken."""
    started = time.monotonic()
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda i: api.create(path, deployment(i, replicas)), range(objects)))
    return time.monotonic() - started


def injected_count(api: kubeapi.ApiClient) -> int:
    """Deployments whose status annotation says injected, listed in pages of 500."""
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments?limit=500"
    count, token = 0, ""
    while True:
        page = api.get(path + (f"&continue={token}" if token else ""))
        count += sum(
            1
            for d in page["items"]
            if (d["metadata"].get("annotations") or {})
            .get(keys.STATE_STATUS, "")
            .startswith("ok: ")
        )
        token = page["metadata"].get("continue") or ""
        if not token:
            return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument(
        "--replicas", type=int, default=0, help="per Deployment (0: the rig holds no 10,000 pods)"
    )
    parser.add_argument("--clients", type=int, default=16, help="parallel creating clients")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    n = args.objects

    load = os.getloadavg()[0]
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="operator-scale-"))
    r = rig.Rig.start(workdir / "rig", with_consul=False)
    proc: subprocess.Popen[bytes] | None = None
    try:
        assert r.control_plane is not None
        api = r.control_plane.api()
        api.timeout = 120
        api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        )
        port = free_port()
        log = workdir / "operator.log"

        # 1. The idle operator, before any workload exists: the floor of its RSS.
        proc = start_operator(r.kubeconfig, port, log)
        time.sleep(3)
        idle_rss = rss_now(proc.pid)
        stop_operator(proc)
        proc = None

        # 2. N annotated Deployments exist before the operator starts: a `helm install`
        #    into a cluster that already runs its workloads. Creation is timed apart,
        #    so the operator's throughput is not bounded by the clients' create rate.
        created = create_all(api, n, args.replicas, args.clients)
        server_before = apiserver_requests(api)
        started = time.monotonic()
        proc = start_operator(r.kubeconfig, port, log)
        up = time.monotonic() - started
        injected = up + wait_for_metric(
            port, "quiesce_operator_patches_total", n, 1800, action="inject"
        )
        time.sleep(5)  # late watch events (the controller's status writes) arrive
        after = scrape(port)
        server_after = apiserver_requests(api)
        cpu, peak = proc_usage(proc.pid)
        steady_rss = rss_now(proc.pid)
        listed = injected_count(api)

        # 3. A restart: re-listing N injected Deployments; it must write nothing.
        stop_operator(proc)
        started = time.monotonic()
        proc = start_operator(r.kubeconfig, port, log)
        up_again = time.monotonic() - started
        relisted = up_again + wait_for_metric(
            port, "quiesce_operator_objects_managed", n, 1800, kind="Deployment"
        )
        time.sleep(5)
        restarted = scrape(port)
        restart_cpu, restart_peak = proc_usage(proc.pid)
    finally:
        if proc is not None:
            stop_operator(proc)
        r.stop()

    def total(name: str, **labels: str) -> float:
        return metric(after, name, **labels)

    writes = total("quiesce_operator_patches_total")
    requests = total("quiesce_operator_api_requests_total")
    gets = total("quiesce_operator_api_requests_total", verb="get")
    conflicts = total("quiesce_operator_errors_total")
    events = total("quiesce_operator_events_total")
    latency_sum = total("quiesce_operator_reconcile_seconds_sum")
    latency_count = total("quiesce_operator_reconcile_seconds_count")
    restart_writes = metric(restarted, "quiesce_operator_patches_total")
    restart_requests = metric(restarted, "quiesce_operator_api_requests_total")
    per_object_kib = 1024 * (peak - idle_rss) / n
    mean_ms = 1000 * latency_sum / max(latency_count, 1)
    server_total = server_after - server_before
    fast = injected <= TARGET_SECONDS
    limit = chart_limit_mib()
    small = peak <= limit
    block = "\n".join(
        [
            "## operator scale",
            "",
            f"`python benchmarks/operator_scale.py` on {datetime.date.today().isoformat()}:"
            f' {n:,} Deployments with `quiesce.dev/inject: "true"`'
            f" ({args.replicas} replicas each; 0 by default, since the rig's one node cannot"
            " hold 10,000 pods, and injection is a write to the Deployment whatever its"
            " replicas)"
            f" created ({args.clients} parallel clients) before the operator starts, as when"
            " quiesce is installed into a running cluster; then the operator restarted."
            " On the rig: etcd, kube-apiserver 1.37.2, controller-manager and scheduler"
            " niced on the same CPUs; the real `quiesce operator` subprocess with default"
            " settings (8 write workers).",
            "",
            f"- machine: {len(os.sched_getaffinity(0))} CPUs (nproc), {docs_report.cpu_model()};"
            f" Python {platform.python_version()}; load average {load:.1f} at the start"
            " (other engineers' builds and tests share the CPUs)",
            "",
            "| measured | value |",
            "|---|---|",
            f"| creating {n:,} Deployments (clients' API round trips, operator stopped) |"
            f" {created:.1f} s |",
            f"| operator start until all {n:,} injected | {injected:.1f} s"
            f" ({listed:,} listed as injected afterwards) |",
            f"| operator CPU (start, list, {n:,} injections) | {cpu:.1f} s |",
            f"| operator RSS idle (no workload) / peak / after | {idle_rss:.0f} /"
            f" {peak:.0f} / {steady_rss:.0f} MiB |",
            f"| RSS per object ((peak - idle) / {n:,}) | {per_object_kib:.1f} KiB |",
            f"| writes (apply/patch) | {writes:.0f} ({writes / n:.2f} per object) |",
            f"| quiesce's own requests (writes, RoleBinding, re-reads) | {requests:.0f}"
            f" ({requests / n:.2f} per object; {gets:.0f} GETs after conflicts) |",
            f"| write conflicts retried (stale watch events) | {conflicts:.0f} |",
            f"| Events posted | {events:.0f} |",
            f"| mean reconcile (decide + queue + write) | {mean_ms:.1f} ms"
            f" over {latency_count:.0f} watch events |",
            f"| API server requests, everyone, while injecting | {server_total:,.0f}"
            f" ({server_total / n:.1f} per object) |",
            f"| restart: start until all {n:,} re-listed | {relisted:.1f} s |",
            f"| restart: CPU / peak RSS | {restart_cpu:.1f} s / {restart_peak:.0f} MiB |",
            f"| restart: writes / requests while re-listing | {restart_writes:.0f} /"
            f" {restart_requests:.0f} |",
            "",
            f"Goals: all injected within {TARGET_SECONDS:g} s of the operator's start:"
            f" {'met' if fast else 'missed'}; peak RSS within the chart's"
            f" {limit} Mi limit: {'met' if small else 'missed'}."
            " kopf's list+watch per kind are a handful of long-lived requests, not counted."
            " Where the time goes, and what bounds the memory: docs/operator.md, Scale.",
            "",
        ]
    )
    print(block)
    if not args.no_write:
        docs_report.write_section("operator scale", block)
    return 0 if fast and small else 1


if __name__ == "__main__":
    sys.exit(main())
