"""``quiesce lint``: shutdown hazards found in manifests and Dockerfiles, offline.

Most requests dropped during rollouts come from a few mistakes visible
before anything is deployed: a shell as PID 1, a hook longer than the grace
period, a grace period shorter than the load balancer's lag. This package
finds them without a cluster.

* :mod:`~quiesce.lint.loader`     YAML files, directories, stdin, with lines;
* :mod:`~quiesce.lint.rules`      the rule catalogue (stable IDs);
* :mod:`~quiesce.lint.manifests`  the checks over Kubernetes objects;
* :mod:`~quiesce.lint.references` the Services, load balancers and ConfigMaps they name;
* :mod:`~quiesce.lint.ignores`    ``quiesce.dev/lint-ignore``;
* :mod:`~quiesce.lint.dockerfile` the checks over Dockerfiles;
* :mod:`~quiesce.lint.cluster`    a live cluster, read-only;
* :mod:`~quiesce.lint.output`     table, JSON and SARIF 2.1.0;
* :func:`lint`                    all of the above in one call.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from typing import TextIO

from quiesce.lint import cluster, dockerfile, findings, loader, manifests
from quiesce.plan import outer


def lint(
    paths: Sequence[str],
    *,
    dockerfiles: Sequence[str] = (),
    stdin: TextIO | None = None,
    cluster_source: cluster.Source | None = None,
    budgets: outer.OuterBudgets | None = None,
) -> findings.Report:
    """Lint manifests (``-`` is stdin), Dockerfiles and optionally a live cluster.

    ``budgets``: the cluster's outer budgets (the operator configuration's ``outerBudgets``);
    default: the cluster-autoscaler's 600 s only. Input errors are reported in the result,
    never raised.
    """
    with _gc_paused():
        return _lint(paths, dockerfiles, stdin, cluster_source, budgets)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic GC rescans every loaded node on each pass: on 10,000 objects that
    was half the run time (benchmarks/lint.py). A lint run makes few cycles, so the
    collector waits until the run is over.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _lint(
    paths: Sequence[str],
    dockerfiles: Sequence[str],
    stdin: TextIO | None,
    cluster_source: cluster.Source | None,
    budgets: outer.OuterBudgets | None,
) -> findings.Report:
    loaded = loader.load_paths(paths, stdin=stdin)
    if cluster_source is not None:
        loaded.extend(cluster.load(cluster_source))
    found, shape_errors = manifests.check(loaded.manifests, budgets)
    errors = [*loaded.errors, *shape_errors]
    checked = len(loaded.manifests)
    for path in dockerfiles:
        result = dockerfile.lint_file(path)
        found.extend(result.found)
        errors.extend(result.errors)
        checked += int(result.checked)
    return findings.Report(
        findings=tuple(found),
        errors=tuple(errors),
        objects=checked,
        skipped=loaded.skipped,
    )
