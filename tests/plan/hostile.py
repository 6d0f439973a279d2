"""The worst annotations a tenant can write under the API server's 256 KiB limit.

Kubernetes refuses an object whose annotations (keys and values) exceed 256 KiB
in all, so that is the most a single workload can feed the plan. Shared by the
bounded-error tests and the RSS measurement in docs/benchmarks.md::

    python -c 'from tests.plan import hostile; hostile.measure("all")'
"""

from __future__ import annotations

import resource
import sys
from typing import Any, Final

from quiesce import annotations as keys

#: The API server's limit on the total size of an object's annotations.
ANNOTATIONS_LIMIT: Final = 256 * 1024

POD_SPEC: Final[dict[str, Any]] = {
    "containers": [
        {"name": f"app-{i}", "image": "example/app:1", "ports": [{"containerPort": 8000 + i}]}
        for i in range(20)
    ]
}


def _listing(key: str, budget: int, item: str) -> str:
    """A comma-separated list of distinct unknown names filling ``budget`` bytes."""
    parts: list[str] = []
    size = 0
    index = 0
    while True:
        part = f"{item}{index}"
        if size + len(part) + 1 > budget:
            break
        parts.append(part)
        size += len(part) + 1
        index += 1
    return ",".join(parts)


def worst(which: str) -> dict[str, str]:
    """Annotations of at most :data:`ANNOTATIONS_LIMIT` bytes aimed at one list (or all)."""
    annotations = {keys.INJECT: "true"}
    targets = {
        "containers": [keys.CONTAINERS],
        "consul": [keys.CONSUL_SERVICE],
        "ports": [keys.LONG_LIVED_PORTS],
        "unknown": [],
        "all": [keys.CONTAINERS, keys.CONSUL_SERVICE, keys.LONG_LIVED_PORTS],
    }[which]
    room = ANNOTATIONS_LIMIT - sum(len(k) + len(v) for k, v in annotations.items())
    if which in ("unknown", "all"):
        # Many unknown keys, each an error of its own (keys are at most 63 + prefix).
        share = room if which == "unknown" else room // 4
        index = 0
        used = 0
        while used + 40 < share:
            key = f"{keys.PREFIX}x{index}"
            annotations[key] = "1"
            used += len(key) + 1
            index += 1
        room -= used
    for key in targets:
        share = room // len(targets) - len(key)
        item = "p" if key == keys.LONG_LIVED_PORTS else "n"
        annotations[key] = _listing(key, share, item)
    total = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    assert total <= ANNOTATIONS_LIMIT, total
    return annotations


def measure(which: str) -> None:
    """Print the peak RSS of this process after one build_plan on :func:`worst` (Linux KiB)."""
    from quiesce import plan as plans

    annotations = worst(which)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    errors = 0
    message = 0
    try:
        plans.build_plan(annotations, POD_SPEC)
    except plans.PlanError as exc:
        errors = len(exc.errors)
        message = len(str(exc))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"{which}: annotations {sum(len(k) + len(v) for k, v in annotations.items())} B, "
        f"errors {errors}, message {message} chars, "
        f"peak RSS {after / 1024:.1f} MiB (+{(after - before) / 1024:.1f} MiB)",
        file=sys.stdout,
    )
