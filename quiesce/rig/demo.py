"""The local demo: a rolling update under load, four stop policies side by side.

Builds the rig on first use, starts it with the node agent and the real
``quiesce operator``, then rolls a Consul-registered app (3 replicas behind
HAProxy with Consul DNS discovery) once per stop policy while a load
generator counts every failed request. Prints the table and saves a plot.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from quiesce.rig import binaries, haproxy, report, rig, rollout


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run(
    *,
    discovery_interval: float = 5.0,
    rate: float = 50.0,
    redispatch: bool = False,
    policies: list[str] | None = None,
    output: Path = Path("demo-output"),
) -> int:
    took = binaries.ensure_all()
    if took:
        _say("built the rig's binaries: " + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()))
    profile = haproxy.Profile(discovery_interval=discovery_interval, redispatch=redispatch)
    chosen = [
        p for p in rollout.policies(discovery_interval) if policies is None or p.name in policies
    ]
    started = time.monotonic()
    results = []
    with rig.Rig.start(node_agent=True) as r:
        _say(
            f"rig up in {time.monotonic() - started:.0f} s (kube-apiserver "
            f"{binaries.KUBERNETES_VERSION}, Consul {binaries.CONSUL_VERSION}, node agent)"
        )
        operator = rollout.start_operator(r)
        _say(
            f"quiesce operator running; load balancer: {profile.describe()}; "
            f"load: {rate:g} requests/s, 20 % POST"
        )
        try:
            for policy in chosen:
                result = rollout.run_one(
                    r,
                    policy,
                    profile,
                    rate=rate,
                    converge_max=rollout.ceiling(profile),
                    progress=_say,
                )
                _say(
                    f"{policy.describe()}: {result.summary.failed} of {result.summary.sent} "
                    f"requests failed, p99 {result.summary.p99_ms:.0f} ms"
                )
                results.append(result)
        finally:
            operator.stop()
    print()
    print(report.table([r.row() for r in results]))
    output.mkdir(parents=True, exist_ok=True)
    png = report.plot(results, output / "rollout.png")
    rollout.write_json(results, output / "rollout.json")
    total = time.monotonic() - started
    print(f"\nplot: {png}; numbers: {output / 'rollout.json'}; total {total:.0f} s")
    return 0
