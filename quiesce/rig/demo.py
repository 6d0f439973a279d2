"""The local demo on the rig (first stage): show the discovery lag quiesce exists for.

It starts the rig, runs two pods of the test app registered in Consul behind
HAProxy (Consul DNS discovery), deregisters one and measures how long HAProxy
keeps sending it traffic: the window in which a pod that simply stopped would
drop requests. The full rolling-update comparison (no hook, sleep, quiesce)
builds on this.
"""

from __future__ import annotations

import sys
import time
import urllib.request

from quiesce.rig import binaries, haproxy, process, rig


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(*, discovery_interval: float = 5.0) -> int:
    took = binaries.ensure_all()
    if took:
        _say(f"built the rig's binaries: {', '.join(f'{k} {v:.0f} s' for k, v in took.items())}")
    started = time.monotonic()
    with rig.Rig.start() as r:
        assert r.consul is not None
        _say(
            f"rig up in {time.monotonic() - started:.1f} s: kube-apiserver "
            f"{binaries.KUBERNETES_VERSION} at {r.control_plane.server if r.control_plane else '-'}"
            f", Consul {binaries.CONSUL_VERSION} at {r.consul.http_addr}"
        )
        names = []
        for i in range(2):
            pod = r.network.sandbox(f"demo{i}")
            pod.popen(
                [
                    sys.executable,
                    "-m",
                    "quiesce.rig.testapp",
                    "--name",
                    f"web-{i}",
                    "--bind",
                    pod.ip,
                ]
            )
            deadline = time.monotonic() + 30
            while not process.tcp_open(pod.ip, 8080):
                if time.monotonic() > deadline:
                    _say(f"web-{i} did not start listening on {pod.ip}:8080")
                    return 1
                time.sleep(0.1)
            r.consul.register({"ID": f"web-{i}", "Name": "web", "Address": pod.ip, "Port": 8080})
            names.append(f"web-{i} at {pod.ip}")
        profile = haproxy.Profile(discovery_interval=discovery_interval)
        lb = r.load_balancer("web", profile)
        _say(f"pods: {', '.join(names)}; load balancer: {profile.describe()}")

        def served() -> set[str]:
            seen = set()
            for _ in range(6):
                with urllib.request.urlopen(lb.url, timeout=5) as resp:
                    seen.add(resp.read().decode().strip())
            return seen

        deadline = time.monotonic() + 30
        while served() != {"web-0", "web-1"}:
            if time.monotonic() > deadline:
                _say("HAProxy did not discover both pods within 30 s")
                return 1
            time.sleep(0.5)
        _say("HAProxy routes to both pods; deregistering web-1 from Consul...")
        r.consul.deregister("web-1")
        gone = time.monotonic()
        while "web-1" in served():
            time.sleep(0.1)
        lag = time.monotonic() - gone
        print(
            f"HAProxy kept sending requests to web-1 for {lag:.1f} s after it left Consul.\n"
            f"A pod that stops at once loses what arrives in that window; quiesce waits "
            f"until it is observably over."
        )
    _say("rig stopped; no process left behind")
    return 0
