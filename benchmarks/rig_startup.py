"""Rig start-up: how long a warm machine takes from nothing to a ready rig.

Starts and stops the whole rig (bridge, Consul, etcd, kube-apiserver,
controller-manager, scheduler, a Ready Node) several times and reports the
start-to-ready time; with ``--cold`` it also builds every binary into an
empty cache first (downloads modules: tens of minutes). Writes the
``## rig startup`` section of docs/benchmarks.md. Target: warm start <= 20 s.

    .venv/bin/python benchmarks/rig_startup.py [--runs 5] [--cold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import report

from quiesce.rig import binaries, rig


def cold_build_seconds() -> dict[str, float]:
    """Build every family into an empty cache, in a child process (CACHE_ROOT is read at import)."""
    with tempfile.TemporaryDirectory(prefix="quiesce-cold-") as cache:
        code = (
            "from quiesce.rig import binaries; import json; "
            "print(json.dumps(binaries.ensure_all(echo=False)))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=dict(os.environ, QUIESCE_CACHE=cache),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        import json

        return {k: float(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def _row(name: str, values: list[float]) -> str:
    return f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold", action="store_true", help="also time a build into an empty cache")
    args = parser.parse_args()
    binaries.ensure_all()
    warm = []
    stop = []
    for i in range(args.runs):
        t0 = time.monotonic()
        r = rig.Rig.start()
        warm.append(time.monotonic() - t0)
        t1 = time.monotonic()
        r.stop()
        stop.append(time.monotonic() - t1)
        print(f"run {i + 1}: ready in {warm[-1]:.1f} s, stopped in {stop[-1]:.1f} s", flush=True)
    lines = [
        "## rig startup",
        "",
        f"`python benchmarks/rig_startup.py --runs {args.runs}` on {report.today()}.",
        "",
        f"- machine: {report.machine()}",
        "- rig: bridge + Consul dev agent + etcd + kube-apiserver + kube-controller-manager + "
        "kube-scheduler + a Ready Node (Kubernetes "
        f"{binaries.KUBERNETES_VERSION}, etcd {binaries.ETCD_VERSION}, "
        f"Consul {binaries.CONSUL_VERSION})",
        "",
        "| measured | median | min | max |",
        "|---|---|---|---|",
        _row("warm start to ready (s)", warm),
        _row("stop, nothing left (s)", stop),
        "",
        "Target: warm start <= 20 s: "
        + ("meets it." if statistics.median(warm) <= 20 else "MISSES it."),
    ]
    if args.cold:
        cold = cold_build_seconds()
        lines += [
            "",
            "Cold build into an empty cache (module downloads included): "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in cold.items())
            + f"; total {sum(cold.values()) / 60:.1f} min.",
        ]
    else:
        lines += [
            "",
            "Cold build (first `./dev setup` on this machine, 2026-11-26, module downloads "
            "included): Kubernetes 8.0 min, Consul 2.7 min, helm 1.1 min, etcd 0.6 min; "
            "total 12.4 min. Re-measure with `--cold`.",
        ]
    report.write_section("rig startup", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
