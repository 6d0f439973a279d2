"""The headline benchmark: rolling updates under load, four stop policies side by side.

The same scenario as ``quiesce demo`` (see quiesce/rig/rollout.py), with more
requests and repetitions: per run, back-to-back rollouts of 3 replicas until at
least ``--min-requests`` were sent at ``--rate`` requests/s (20 % POST, each
asking for 10-500 ms of work). Configurations are interleaved (rep, profile,
policy) so the shared machine's noise falls on all of them alike. Writes the
``## rollout`` section of docs/benchmarks.md and docs/rollout.png.

    .venv/bin/python benchmarks/rollout.py                # the full comparison (~35 min)
    .venv/bin/python benchmarks/rollout.py --quick        # one short run per policy
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import report

from quiesce.rig import haproxy, rig, rollout
from quiesce.rig import report as rig_report

DOCS = Path(__file__).resolve().parent.parent / "docs"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=80.0)
    parser.add_argument("--min-requests", type=int, default=10_000)
    parser.add_argument("--lag", type=float, default=5.0, help="main table's discovery interval")
    parser.add_argument("--quiesce-reps", type=int, default=3)
    parser.add_argument(
        "--other-lags",
        type=float,
        nargs="*",
        default=[1.0, 15.0],
        help="extra discovery intervals, no hook vs quiesce, default profile",
    )
    parser.add_argument(
        "--sparse-rate",
        type=float,
        default=2.0,
        help="sparse traffic runs (no hook vs quiesce) at this rate; 0: none",
    )
    parser.add_argument("--quick", action="store_true", help="one short run per policy")
    args = parser.parse_args()
    if args.quick:
        args.min_requests, args.quiesce_reps, args.other_lags, args.sparse_rate = 0, 1, [], 0

    profiles = [
        haproxy.Profile(discovery_interval=args.lag),
        haproxy.Profile(discovery_interval=args.lag, redispatch=True),
    ]
    plan: list[tuple[rollout.StopPolicy, haproxy.Profile, int]] = []
    for rep in range(args.quiesce_reps):
        for profile in profiles:
            for policy in rollout.policies(args.lag):
                if rep == 0 or policy.quiesce:
                    plan.append((policy, profile, args.min_requests))
    # (policy, profile, min_requests, rate)
    extra: list[tuple[rollout.StopPolicy, haproxy.Profile, int, float]] = []
    for lag in args.other_lags:
        for policy in rollout.policies(lag):
            if policy.name in ("no-hook", "quiesce"):
                extra.append((policy, haproxy.Profile(discovery_interval=lag), 3_000, args.rate))
    if args.sparse_rate:
        for _ in range(2):
            for policy in rollout.policies(args.lag):
                if policy.name in ("no-hook", "quiesce"):
                    extra.append((policy, profiles[0], 0, args.sparse_rate))

    machine = report.machine()
    started = time.monotonic()
    results: list[rollout.RolloutResult] = []
    extra_results: list[rollout.RolloutResult] = []
    with rig.Rig.start(node_agent=True) as r:
        operator = rollout.start_operator(r)
        try:
            for i, (policy, profile, min_requests) in enumerate(plan + extra, 1):
                say(f"run {i}/{len(plan) + len(extra)}: {policy.describe()}, {profile.describe()}")
                res = rollout.run_one(
                    r,
                    policy,
                    profile,
                    rate=args.rate,
                    min_requests=min_requests,
                    converge_max=rollout.ceiling(profile.discovery_interval),
                    progress=say,
                )
                say(f"  {json.dumps(res.row())}")
                for f in res.failures:
                    print(
                        f"    failed at {f.at:.3f} s: {f.method} {f.outcome} after "
                        f"{f.latency:.3f} s",
                        flush=True,
                    )
                (results if i <= len(plan) else extra_results).append(res)
        finally:
            operator.stop()
    minutes = (time.monotonic() - started) / 60
    # The plot shows the first repetition: every policy under both profiles.
    png = rig_report.plot(
        results[: len(rollout.policies(args.lag)) * len(profiles)], DOCS / "rollout.png"
    )
    lines = [
        "## rollout",
        "",
        f"`python benchmarks/rollout.py{' --quick' if args.quick else ''}` on {report.today()}, "
        f"{minutes:.0f} min in all.",
        "",
        f"- machine: {machine}",
        f"- load: {args.rate:g} requests/s through HAProxy from the client namespace, 20 % POST, "
        "each asking the app for 10-500 ms of work; client timeout 10 s; every run keeps "
        f"rolling (3 replicas, maxSurge 1, maxUnavailable 0) until >= {args.min_requests:,} "
        "requests were sent",
        "- app: registers itself in Consul when listening (HTTP check every 1 s, "
        "DeregisterCriticalServiceAfter 10 s), deregisters itself on SIGTERM, then closes idle "
        "keep-alive connections and finishes in-flight requests (Spring Cloud Consul's behaviour)",
        f'- quiesce: `quiesce.dev/inject: "true"`, `converge-max` = 2 x lag + 2 s '
        f"({rollout.ceiling(args.lag):g} s here), every other annotation at its default",
        f"- HAProxy timeouts: connect {profiles[0].connect_timeout:g} s, server "
        f"{profiles[0].server_timeout:g} s, retries {profiles[0].retries}",
        "",
        f"Discovery every {args.lag:g} s (runs interleaved; quiesce repeated "
        f"{args.quiesce_reps} times per profile):",
        "",
        rig_report.table(results),
    ]
    if extra_results:
        lines += [
            "",
            "Other discovery lags (default profile):",
            "",
            rig_report.table(extra_results),
        ]
    lines += ["", f"![failed requests per second and pods terminating]({png.name})"]
    report.write_section("rollout", "\n".join(lines))
    (DOCS / "rollout-results.json").write_text(
        json.dumps([dict(x.row(), profile=x.profile) for x in results + extra_results], indent=2)
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
