"""What quiesce adds to a pod's start, on the rig's real node (kubelet, containerd, runc).

Issue 20. Pods are created one at a time, alternating between the app alone and
the app as the operator's template injects it (native sidecar: the app starts
only once the sidecar's startup probe passes), all on one real node with the
product image built from the Dockerfile. For each pod:

* creation -> app container start: the app's first command writes a file on a
  hostPath; its modification time is the host's clock (same machine);
* creation -> Ready: the moment a ``kubectl get -w`` started beforehand sees
  the pod's Ready condition turn True.

"Creation" is the host clock just before ``kubectl create`` (the API server's
timestamps have second granularity). The kubectl process start is in both
configurations alike, so it cancels out of the difference. Also measured:
the sidecar's own start as a process on loopback (start to a ``/readyz``
answer, and the CPU time it used until then).

Usage: python benchmarks/pod_start.py [--pods 30] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import report

from quiesce import config as configuration
from quiesce import plan as plans
from quiesce import template
from quiesce.rig import rig
from quiesce.rig.realnode import images, kubelet, product
from quiesce.rig.realnode.node import RealNode

HEADING = "pod start"
NAMESPACE = "bench-pod-start"
TICK = os.sysconf("SC_CLK_TCK")
APP = r"""
echo started > /events/$POD.start
mkdir -p /tmp/www && echo ok > /tmp/www/index.html
exec httpd -f -p 8080 -h /tmp/www
"""


def app_spec(events: Path) -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "app",
                "image": images.BUSYBOX_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", APP],
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}},
                "volumeMounts": [{"name": "events", "mountPath": "/events"}],
            }
        ],
        "volumes": [{"name": "events", "hostPath": {"path": str(events), "type": "Directory"}}],
        "terminationGracePeriodSeconds": 1,
    }


def pod(node: RealNode, name: str, events: Path, *, quiesce: bool, image: str) -> dict[str, Any]:
    spec = app_spec(events)
    annotations: dict[str, str] = {}
    if quiesce:
        annotations = {
            "quiesce.dev/inject": "true",
            "quiesce.dev/converge-min": "0s",
            "quiesce.dev/converge-max": "1s",
        }
        plan = plans.build_plan(annotations, spec)
        config = configuration.load_config(
            {"sidecar": {"image": image, "imagePullPolicy": "Never"}}
        )
        spec = template.inject(
            spec, plan, config, token=template.generate_token(), native=True
        ).pod_spec
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
        "spec": kubelet.placed(spec, node.name),
    }


class ReadyWatch:
    """``kubectl get pods -w``: the host clock when each pod's Ready turned True."""

    def __init__(self, r: rig.Rig) -> None:
        from quiesce.rig import binaries

        ready = '.status.conditions[?(@.type=="Ready")].status'
        self.proc = subprocess.Popen(
            [
                str(binaries.require("kubectl")), f"--kubeconfig={r.kubeconfig}",
                "get", "pods", "-n", NAMESPACE, "-w", "--no-headers",
                "-o", f"custom-columns=NAME:.metadata.name,READY:{ready}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.ready: dict[str, float] = {}
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.time()
            parts = line.split()
            if len(parts) >= 2 and "True" in parts[1]:
                self.ready.setdefault(parts[0], now)

    def wait(self, name: str, timeout: float = 120) -> float:
        end = time.monotonic() + timeout
        while name not in self.ready:
            if time.monotonic() > end:
                raise TimeoutError(f"{name} never Ready")
            time.sleep(0.01)
        return self.ready[name]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_pods(n: int) -> dict[str, list[dict[str, float]]]:
    workdir = Path(tempfile.mkdtemp(prefix="quiesce-pod-start-"))
    r = rig.Rig.start(workdir / "rig")
    results: dict[str, list[dict[str, float]]] = {"plain": [], "quiesce": []}
    try:
        image = product.quiesce_image()
        node = RealNode.start(r, name="rig-real-start", index=1)
        node.import_image(image)
        r.kubectl("create", "namespace", NAMESPACE)
        events = workdir / "events"
        events.mkdir()
        events.chmod(0o777)
        watch = ReadyWatch(r)
        try:
            # one warm-up of each (first use of the images on the node), not counted
            for i in range(n + 1):
                for quiesce in (False, True) if i % 2 else (True, False):
                    kind = "quiesce" if quiesce else "plain"
                    name = f"{kind}-{i}"
                    manifest = pod(node, name, events, quiesce=quiesce, image=image.name)
                    created = time.time()
                    r.kubectl("create", "-f", "-", input=json.dumps(manifest))
                    ready = watch.wait(name)
                    start_file = events / f"{name}.start"
                    while not start_file.exists():
                        time.sleep(0.01)
                    # the file's modification time: the host's clock (busybox has no %N)
                    app_start = start_file.stat().st_mtime
                    if i > 0:
                        results[kind].append(
                            {"ready": ready - created, "app_start": app_start - created}
                        )
                        print(name, round(ready - created, 3), round(app_start - created, 3))
                    r.kubectl(
                        "delete", "pod", name, "-n", NAMESPACE, "--wait=false",
                        "--grace-period=1",
                    )  # fmt: skip
        finally:
            watch.stop()
            r.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    finally:
        r.stop()
    return results


def sidecar_starts(n: int) -> dict[str, list[float]]:
    """The sidecar process on loopback: start -> /readyz answered, CPU until then, RSS."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from sidecar.helpers import make_plan

    ready, cpu, rss = [], [], []
    for _ in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("QUIESCE_", "CONSUL_", "PYTHONDONTWRITE"))
        }
        env.update(
            QUIESCE_PLAN=make_plan(port=port).to_json(),
            QUIESCE_TOKEN="bench",
            POD_NAME="bench",
            POD_NAMESPACE="bench",
            POD_IP="127.0.0.1",
        )
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "quiesce", "sidecar"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10):
                    break
            except OSError:
                time.sleep(0.002)
        ready.append(time.monotonic() - started)
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu.append((int(fields[11]) + int(fields[12])) / TICK)
        time.sleep(2)
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss.append(int(line.split()[1]) / 1024)
        proc.kill()
        proc.wait()
    return {"ready": ready, "cpu": cpu, "rss": rss}


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=30, help="pods of each kind")
    parser.add_argument("--starts", type=int, default=9, help="sidecar process starts")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    machine = report.machine()
    side = sidecar_starts(args.starts)
    runs = run_pods(args.pods)
    print(json.dumps({"sidecar": side, "pods": runs}, indent=2))

    def cells(key: str) -> str:
        plain = [p[key] for p in runs["plain"]]
        quiesce = [p[key] for p in runs["quiesce"]]
        # pods are paired in creation order (interleaved): the difference of each pair
        diff = [q - p for q, p in zip(quiesce, plain, strict=False)]
        return (
            f"{statistics.median(plain):.2f} | {statistics.median(quiesce):.2f} | "
            f"{statistics.median(diff):+.2f} | {p90(diff):+.2f}"
        )

    ms = [x * 1000 for x in side["ready"]]
    cpu_ms = [x * 1000 for x in side["cpu"]]
    block = f"""## pod start

`python benchmarks/pod_start.py --pods {args.pods} --starts {args.starts}` on \
{report.today()} (issue 20).

- machine: {machine}
- what runs: one pod at a time on the rig's real node (kubelet, containerd, runc),
  alternating the app alone (`plain`: busybox httpd with an HTTP readiness probe) and the
  same app as the operator's template injects it (`quiesce`: native sidecar from the
  product image, startup probe every 1 s with no initial delay and a 5 s timeout); one
  warm-up pod of each not counted; {len(runs["plain"])} pods of each kind
- creation: the host clock before `kubectl create`; app start: the modification time of a
  file the app's first command writes on a hostPath; Ready: a `kubectl get -w` started
  beforehand sees Ready=True
- difference: each quiesce pod minus the plain pod created next to it

| s from creation to | plain, median | quiesce, median | difference, median | difference, p90 |
|---|---|---|---|---|
| app container start | {cells("app_start")} |
| Ready | {cells("ready")} |

The sidecar as a process (`python -m quiesce sidecar` on loopback, {args.starts} starts):
start to its first `/readyz` answer {statistics.median(ms):.0f} ms median
({min(ms):.0f}–{max(ms):.0f}); CPU time used until then {statistics.median(cpu_ms):.0f} ms
median (10 ms clock ticks); RSS when ready {statistics.median(side["rss"]):.1f} MB.
The port listens before aiohttp is imported, so a probe sent during the start waits in
the backlog and is answered when the server is up: the startup probe's first attempt
passes, and the app's start waits for the sidecar's own start plus at most one probe
period (the kubelet's first startup probe comes at its worker's next 1 s tick, not at
the container's start).
"""
    if not args.no_write:
        report.write_section(HEADING, block)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
