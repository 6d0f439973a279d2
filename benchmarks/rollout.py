"""The headline benchmark: rolling updates under load, four stop policies side by side.

The same scenario as ``quiesce demo`` (see quiesce/rig/rollout.py), with more
requests and repetitions: per run, back-to-back rollouts of 3 replicas until at
least ``--min-requests`` were sent at ``--rate`` requests/s (20 % POST, each
asking for 10-500 ms of work). Configurations are interleaved (rep, profile,
policy) so the shared machine's noise falls on all of them alike. Every run's
row is saved to docs/rollout-results.json as soon as it ends (``--resume``
skips runs already there), then the ``## rollout`` section of
docs/benchmarks.md is written from that file.

    .venv/bin/python benchmarks/rollout.py                # the full comparison (~45 min)
    .venv/bin/python benchmarks/rollout.py --quick        # one short run per policy
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import report

from quiesce.rig import haproxy, rig, rollout
from quiesce.rig import report as rig_report

DOCS = Path(__file__).resolve().parent.parent / "docs"
RESULTS = DOCS / "rollout-results.json"


@dataclasses.dataclass(frozen=True)
class Run:
    group: str  # "main", "lag" or "sparse"
    key: str  # unique within the benchmark, for --resume
    policy: rollout.StopPolicy
    profile: haproxy.Profile
    rate: float
    min_requests: int


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def plan_runs(args: argparse.Namespace) -> list[Run]:
    profiles = [
        haproxy.Profile(discovery_interval=args.lag),
        haproxy.Profile(discovery_interval=args.lag, redispatch=True),
    ]
    runs = []
    for rep in range(args.quiesce_reps):
        for p_i, profile in enumerate(profiles):
            for policy in rollout.policies(args.lag):
                if rep == 0 or policy.quiesce:
                    key = f"main/{rep}/{p_i}/{policy.name}"
                    runs.append(Run("main", key, policy, profile, args.rate, args.min_requests))
    for lag in args.other_lags:
        for policy in rollout.policies(lag):
            if policy.name in ("no-hook", "quiesce"):
                profile = haproxy.Profile(discovery_interval=lag)
                runs.append(
                    Run("lag", f"lag/{lag:g}/{policy.name}", policy, profile, args.rate, 3_000)
                )
    if args.sparse_rate:
        for rep in range(2):
            for policy in rollout.policies(args.lag):
                if policy.name in ("no-hook", "quiesce"):
                    runs.append(
                        Run(
                            "sparse",
                            f"sparse/{rep}/{policy.name}",
                            policy,
                            profiles[0],
                            args.sparse_rate,
                            0,
                        )
                    )
    return runs


def section(args: argparse.Namespace, rows: list[dict[str, Any]], minutes: float) -> str:
    by_group = {g: [r for r in rows if r["group"] == g] for g in ("main", "lag", "sparse")}
    first = by_group["main"][0] if by_group["main"] else {}
    lines = [
        "## rollout",
        "",
        f"`python benchmarks/rollout.py{' --quick' if args.quick else ''}` on {report.today()}, "
        f"{minutes:.0f} min for the runs of its last invocation.",
        "",
        f"- machine: {first.get('machine', report.machine())}",
        f"- load: {args.rate:g} requests/s through HAProxy from the client namespace, 20 % POST, "
        "each asking the app for 10-500 ms of work; client timeout 10 s; every run keeps "
        f"rolling (3 replicas, maxSurge 1, maxUnavailable 0) until >= {args.min_requests:,} "
        "requests were sent",
        "- app: registers itself in Consul when listening (HTTP check every 1 s, "
        "DeregisterCriticalServiceAfter 10 s), deregisters itself on SIGTERM, then closes idle "
        "keep-alive connections and finishes in-flight requests (Spring Cloud Consul's behaviour)",
        f'- quiesce: `quiesce.dev/inject: "true"` and `converge-max` = HAProxy\'s worst-case lag '
        "(interval + resolve_retries x timeout retry + hold valid + 1 s = "
        f"{rollout.ceiling(haproxy.Profile(discovery_interval=args.lag)):g} s here); "
        "every other annotation at its default",
        "- HAProxy: connect timeout 3 s, server timeout 30 s, retries 3",
        "",
        f"Discovery every {args.lag:g} s, configurations interleaved, quiesce repeated "
        f"{args.quiesce_reps} times per profile:",
        "",
        rig_report.table(by_group["main"]),
    ]
    if by_group["lag"]:
        lines += [
            "",
            f"Other discovery lags (default profile, {args.rate:g} requests/s):",
            "",
            rig_report.table(by_group["lag"]),
        ]
    if by_group["sparse"]:
        lines += [
            "",
            f"Sparse traffic ({args.sparse_rate:g} requests/s, one rollout, run twice):",
            "",
            rig_report.table(by_group["sparse"]),
        ]
    return "\n".join(lines)


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
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in docs/rollout-results.json, run the rest",
    )
    args = parser.parse_args()
    if args.quick:
        args.min_requests, args.quiesce_reps, args.other_lags, args.sparse_rate = 0, 1, [], 0

    rows: list[dict[str, Any]] = json.loads(RESULTS.read_text()) if args.resume else []
    done = {row["key"] for row in rows}
    runs = [run for run in plan_runs(args) if run.key not in done]
    started = time.monotonic()
    if runs:
        with rig.Rig.start(node_agent=True) as r:
            operator = rollout.start_operator(r)
            try:
                for i, run in enumerate(runs, 1):
                    say(
                        f"run {i}/{len(runs)} ({run.key}): {run.policy.describe()}, "
                        f"{run.profile.describe()}, {run.rate:g} requests/s"
                    )
                    res = rollout.run_one(
                        r,
                        run.policy,
                        run.profile,
                        rate=run.rate,
                        min_requests=run.min_requests,
                        converge_max=rollout.ceiling(run.profile),
                        progress=say,
                    )
                    row = dict(
                        res.row(),
                        group=run.group,
                        key=run.key,
                        rate=run.rate,
                        machine=report.machine(),
                        date=report.today(),
                    )
                    say(f"  {json.dumps(row)}")
                    for f in res.failures:
                        print(
                            f"    failed at {f.at:.3f} s: {f.method} {f.outcome} after "
                            f"{f.latency:.3f} s",
                            flush=True,
                        )
                    rows.append(row)
                    RESULTS.write_text(json.dumps(rows, indent=2))  # nothing is lost on a crash
            finally:
                operator.stop()
    order = {run.key: i for i, run in enumerate(plan_runs(args))}
    rows.sort(key=lambda row: order.get(row["key"], len(order)))
    text = section(args, rows, (time.monotonic() - started) / 60)
    report.write_section("rollout", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
