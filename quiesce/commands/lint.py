"""``quiesce lint``: find shutdown hazards in manifests and Dockerfiles.

Exit codes (documented in the README, relied on by CI):

* 0: no finding at or above ``--fail-on``, and all input was read;
* 1: at least one finding at or above ``--fail-on``;
* 2: some input could not be read (bad YAML, unreadable Dockerfile, missing
  path); everything else was still linted and reported. Bad input wins
  over findings, because a clean result on half the input is not clean.
"""

from __future__ import annotations

import argparse
import sys

from quiesce.commands import configfile

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="find shutdown hazards in manifests and Dockerfiles",
        description=(
            "Find shutdown hazards in Kubernetes manifests and Dockerfiles: a shell as PID 1,"
            " hooks longer than the grace period, grace periods shorter than the load"
            " balancer needs, and more. Needs no cluster."
        ),
        epilog=(
            "exit codes: 0 clean, 1 findings at or above --fail-on, 2 some input could not"
            " be read (the rest is still linted). Suppress per object with the annotation"
            ' quiesce.dev/lint-ignore: "QL001,QL004".'
        ),
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="YAML files or directories (searched recursively); - reads stdin",
    )
    parser.add_argument(
        "--dockerfile",
        action="append",
        default=[],
        metavar="PATH",
        help="a Dockerfile to lint (repeatable)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "sarif"),
        default="table",
        help="output format (default: table)",
    )
    parser.add_argument(
        "--fail-on",
        choices=("warning", "error"),
        default="warning",
        help="lowest severity that makes the exit code 1 (default: warning)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=(
            "the operator's configuration file (as for `quiesce plan --defaults`): its"
            " outerBudgets are checked by QL009 (default: the cluster-autoscaler's 600 s)"
        ),
    )
    parser.add_argument(
        "--list-rules", action="store_true", help="print the rules with IDs and exit"
    )
    live = parser.add_argument_group(
        "live cluster (read-only: list and get only)",
        "Lint the workloads of a running cluster, alone or together with PATHs.",
    )
    live.add_argument(
        "--cluster", action="store_true", help="lint the current kubeconfig context's cluster"
    )
    live.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (implies --cluster)")
    live.add_argument("--context", metavar="NAME", help="kubeconfig context (implies --cluster)")
    live.add_argument(
        "-n", "--namespace", metavar="NS", help="only this namespace (default: all namespaces)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `quiesce sidecar` never pays for the linter's imports.
    from quiesce import lint
    from quiesce.lint import findings, output

    if args.list_rules:
        sys.stdout.write(output.rule_table())
        return EXIT_CLEAN
    budgets = None
    if args.config:
        loaded = configfile.load("lint", "--config", args.config)
        if loaded is None:
            return EXIT_BAD_INPUT
        budgets = loaded.outer_budgets
    source = None
    if args.cluster or args.kubeconfig or args.context:
        from quiesce.lint import cluster

        source = cluster.Source(args.kubeconfig, args.context, args.namespace)
    if not args.paths and not args.dockerfile and source is None:
        print(
            "quiesce lint: give manifest paths, - for stdin, --dockerfile or --cluster",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    report = lint.lint(
        args.paths,
        dockerfiles=args.dockerfile,
        stdin=sys.stdin,
        cluster_source=source,
        budgets=budgets,
    )
    sys.stdout.write(output.render(report, args.output))
    if report.errors:
        if args.output != "table":  # the table already lists them on stdout
            for error in report.errors:
                print(f"quiesce lint: input error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    threshold = findings.Severity(args.fail_on)
    worst = report.worst()
    if worst is not None and worst.rank >= threshold.rank:
        return EXIT_FINDINGS
    return EXIT_CLEAN
