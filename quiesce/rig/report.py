"""Side-by-side tables and a plot of rollout results, for the demo and the benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quiesce.rig import rollout


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :meth:`RolloutResult.row` dicts, one line per run."""
    lines = [
        "| LB profile | stop policy | failed / sent | failures by reason | p50 | p99 | max "
        "| pod termination median / max | rollout |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(row["reasons"].items())) or "-"
        lines.append(
            f"| {row['profile']} | {row['policy']} | {row['failed']:,} / {row['sent']:,} "
            f"| {reasons} "
            f"| {row['p50_ms']:,} ms | {row['p99_ms']:,} ms | {row['max_ms']:,} ms "
            f"| {row['termination_median_s']} s / {row['termination_max_s']} s "
            f"| {row['rollout_s']} s |"
        )
    return "\n".join(lines)


def plot(results: Sequence[rollout.RolloutResult], path: Path) -> Path:
    """Failed requests per second and pods terminating, over time, one panel per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(results), 1, figsize=(9, 2.2 * len(results)), sharex=True, squeeze=False
    )
    for ax, r in zip(axes[:, 0], results, strict=True):
        end = max([f.at for f in r.failures] + [t for t, _ in r.timeline] + [1.0])
        buckets = [0] * (int(end) + 2)
        for f in r.failures:
            buckets[int(f.at)] += 1
        ax.bar(range(len(buckets)), buckets, width=1.0, color="tab:red", label="failed requests/s")
        ax.set_ylabel("failed/s")
        ax.set_ylim(0, max(1, *buckets) * 1.1)
        twin = ax.twinx()
        twin.step(
            [t for t, _ in r.timeline],
            [n for _, n in r.timeline],
            where="post",
            color="tab:blue",
            label="pods terminating",
        )
        twin.set_ylabel("terminating")
        twin.set_ylim(0, 4)
        ax.set_title(
            f"{r.policy} ({r.profile}): {r.summary.failed} failed of {r.summary.sent}", fontsize=9
        )
    axes[-1, 0].set_xlabel("seconds since the load started")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
