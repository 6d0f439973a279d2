"""Benchmark ``quiesce lint``: 10,000 objects, target <= 2 s on this machine.

The input is what `helm template` of a large platform looks like: one YAML
stream of Deployments (a third with a hazard or two), their Services (some
behind AWS NLB IP targets), ConfigMaps and a few CronJobs. Three numbers:

* end to end, as a user runs it: the ``quiesce lint`` process on the file;
* in process: reading the YAML (with line numbers) plus all rules;
* rules only: the checks over already-loaded objects.

Each is the best of ``--repeat`` runs (the machine also runs Go builds).
The result block replaces the ``## lint`` section of docs/benchmarks.md.

    .venv/bin/python benchmarks/lint.py [--objects 10000] [--repeat 3] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import report as docs_report  # benchmarks/report.py: the shared docs writer
import yaml

from quiesce import lint
from quiesce.lint import loader, manifests

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET_SECONDS = 2.0


def generate(objects: int) -> str:
    """A stream of ``objects`` Kubernetes objects, about 2/5 of them workloads."""
    docs: list[dict[str, object]] = []
    i = 0
    while len(docs) < objects:
        name, ns = f"svc-{i}", f"team-{i % 20}"
        hazard = i % 3 == 0
        container: dict[str, object] = {
            "name": "app",
            "image": "bitnami/nginx:1.25" if i % 10 == 0 else f"registry.example.com/app-{i}:1.0",
            "ports": [{"name": "http", "containerPort": 8080}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "args": ["--graceful-timeout", "45" if hazard else "20"],
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "10"]}}},
            "volumeMounts": [{"name": "conf", "mountPath": "/etc/app"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        }
        if not hazard:
            container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": "http"}}
        else:
            container["command"] = ["sh", "-c", "python -m app"]
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name, "tier": "web"}},
                        "spec": {
                            "terminationGracePeriodSeconds": 40,
                            "containers": [container],
                            "volumes": [{"name": "conf", "configMap": {"name": name}}],
                        },
                    },
                },
            }
        )
        annotations = {}
        if i % 5 == 0:
            annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] = "ip"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": ns, "annotations": annotations},
                "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]},
            }
        )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns},
                "data": {"app.yaml": f"threads: 4\ngrace_period_seconds: {50 if hazard else 5}\n"},
            }
        )
        if i % 4 == 0:
            docs.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "metadata": {"name": f"{name}-report", "namespace": ns},
                    "spec": {
                        "schedule": "0 * * * *",
                        "jobTemplate": {
                            "spec": {
                                "template": {
                                    "spec": {
                                        "restartPolicy": "Never",
                                        "containers": [
                                            {"name": "report", "image": "example/report:1"}
                                        ],
                                    }
                                }
                            }
                        },
                    },
                }
            )
        i += 1
    return yaml.safe_dump_all(docs[:objects], sort_keys=False)


def best(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    text = generate(args.objects)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "platform.yaml")
        with open(path, "w") as f:
            f.write(text)
        loaded = loader.load_text(text, path)
        assert len(loaded.manifests) == args.objects, len(loaded.manifests)
        report = lint.lint([path])
        command = [sys.executable, "-m", "quiesce", "lint", "-o", "json", path]
        end_to_end = best(
            args.repeat, lambda: subprocess.run(command, capture_output=True, check=False)
        )
        in_process = best(args.repeat, lambda: lint.lint([path]))
        rules_only = best(args.repeat, lambda: manifests.check(loaded.manifests))

    verdict = "meets" if end_to_end <= TARGET_SECONDS else "misses"
    block = "\n".join(
        [
            "## lint",
            "",
            f"`python benchmarks/lint.py` on {datetime.date.today().isoformat()}:"
            f" {args.objects:,} objects ({len(text) / 1e6:.1f} MB of YAML, one stream),"
            f" {len(report.findings):,} findings; best of {args.repeat}.",
            "",
            f"- machine: {len(os.sched_getaffinity(0))} CPUs (nproc), {docs_report.cpu_model()};"
            f" Python {platform.python_version()}, PyYAML"
            f" {yaml.__version__} ({'libyaml' if yaml.__with_libyaml__ else 'pure Python'});"
            f" load average {load:.1f} at the start (other builds share the CPUs)",
            "",
            "| measured | seconds |",
            "|---|---|",
            f"| `quiesce lint FILE` process, end to end | {end_to_end:.2f} |",
            f"| in process: read YAML with lines + all rules | {in_process:.2f} |",
            f"| rules only (objects already loaded) | {rules_only:.2f} |",
            "",
            f"Target <= {TARGET_SECONDS:g} s end to end: {verdict} it.",
            "",
        ]
    )
    print(block)
    if not args.no_write:
        docs_report.write_section("lint", block)
    return 0 if end_to_end <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
