"""The rule catalogue: stable IDs, severities and the fix each rule asks for.

IDs never change meaning once released (users put them in
``quiesce.dev/lint-ignore`` and in CI baselines); a retired rule keeps its ID
reserved. The checks themselves live in :mod:`quiesce.lint.manifests` and
:mod:`quiesce.lint.dockerfile`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

from quiesce.lint.findings import Severity


@dataclasses.dataclass(frozen=True)
class Rule:
    """One check: what it finds, why that drops requests, and the usual fix."""

    id: str
    name: str
    severity: Severity
    summary: str
    why: str
    fix: str


_ALL = (
    Rule(
        id="QL000",
        name="lint-ignore-unknown-rule",
        severity=Severity.ERROR,
        summary="quiesce.dev/lint-ignore names a rule that does not exist",
        why="a typo in a suppression would otherwise silence nothing, silently",
        fix="use rule IDs from `quiesce lint --list-rules`, comma-separated",
    ),
    Rule(
        id="QL001",
        name="shell-swallows-sigterm",
        severity=Severity.ERROR,
        summary="the stop signal reaches a shell, not the application",
        why=(
            "a shell-form CMD/ENTRYPOINT or `sh -c` without `exec` makes the shell PID 1;"
            " it does not forward SIGTERM, so the app is SIGKILLed at the end of the grace"
            " period with requests in flight and state unflushed"
        ),
        fix='use the exec form (`CMD ["app", "--flag"]`) or start the command with `exec`',
    ),
    Rule(
        id="QL002",
        name="prestop-outlasts-grace",
        severity=Severity.ERROR,
        summary="the preStop hook lasts as long as the grace period or longer",
        why=(
            "the grace period counts from the start of the hook; when the hook uses it up,"
            " the kubelet grants a one-time 2 s and then SIGKILLs the app mid-shutdown"
        ),
        fix="set terminationGracePeriodSeconds to the hook plus the app's shutdown time",
    ),
    Rule(
        id="QL003",
        name="served-without-readiness",
        severity=Severity.WARNING,
        summary="a container serving a Service's port has no readiness probe",
        why=(
            "without a readiness probe a new pod receives traffic before it can serve,"
            " while the rollout already terminates the old ones"
        ),
        fix="add a readinessProbe on the served port",
    ),
    Rule(
        id="QL004",
        name="nginx-fast-shutdown",
        severity=Severity.ERROR,
        summary="nginx/openresty is stopped with SIGTERM, its fast shutdown",
        why=(
            "nginx treats SIGTERM as fast shutdown and closes open connections at once;"
            " SIGQUIT is its graceful shutdown"
        ),
        fix=(
            "stop it with SIGQUIT (`STOPSIGNAL SIGQUIT` in the image, or"
            " `lifecycle.stopSignal: SIGQUIT`) or a preStop hook running `nginx -s quit`"
        ),
    ),
    Rule(
        id="QL005",
        name="grace-below-lb-deregistration",
        severity=Severity.ERROR,
        summary="the grace period is shorter than the load balancer needs to deregister",
        why=(
            "cloud load balancers with IP targets keep sending to a pod for a while after it"
            " starts terminating (AWS NLB/ALB: deregistration delay, >= 120 s unless tuned;"
            " GKE NEG: >= 60 s); a pod that dies sooner drops those requests"
        ),
        fix=(
            "raise terminationGracePeriodSeconds (and keep the pod serving until the load"
            " balancer stops, e.g. with quiesce) or tune the deregistration delay down"
        ),
    ),
    Rule(
        id="QL006",
        name="app-timeout-exceeds-grace",
        severity=Severity.WARNING,
        summary="the application's own shutdown timeout does not fit in the grace period",
        why=(
            "when the app drains for as long as the grace period or longer, the kubelet's"
            " SIGKILL ends the drain first: the outer budget kills the inner one"
        ),
        fix="make the app's timeout shorter than the grace period minus the preStop hook",
    ),
    Rule(
        id="QL007",
        name="consul-without-deregistration",
        severity=Severity.ERROR,
        summary="a Consul-registered workload has no deregistration path on termination",
        why=(
            "Consul keeps the instance in its catalogue until a health check fails, so"
            " gateways route to the dying pod (404/502) unless something deregisters it first"
        ),
        fix='inject quiesce (`quiesce.dev/inject: "true"`) or add a preStop hook that deregisters',
    ),
    Rule(
        id="QL008",
        name="grace-too-short",
        severity=Severity.ERROR,
        summary="a serving workload has a grace period of 0 or only a few seconds",
        why=(
            "endpoint removal is asynchronous and takes seconds to reach load balancers;"
            " a pod killed sooner drops the requests still routed to it"
        ),
        fix="leave terminationGracePeriodSeconds at the default (30) or set it to >= 5",
    ),
    Rule(
        id="QL009",
        name="grace-exceeds-outer-budget",
        severity=Severity.WARNING,
        summary="the grace period is longer than a cluster budget that ends pods sooner",
        why=(
            "the cluster-autoscaler's scale-down (--max-graceful-termination-sec, 600 s by"
            " default), a graceful node shutdown (the kubelet's shutdownGracePeriod) and a"
            " node group's drain timeout each grant a pod less than its grace period and then"
            " SIGKILL it: the outer budget cuts the shutdown short"
        ),
        fix=(
            "raise the cluster's budget (and outerBudgets in `quiesce lint --config`) or lower"
            " terminationGracePeriodSeconds to fit it"
        ),
    ),
)

RULES: Final[Mapping[str, Rule]] = {rule.id: rule for rule in _ALL}

MIN_GRACE_SECONDS: Final = 5
"""QL008: below this, a serving pod cannot outlive endpoint propagation."""

AWS_IP_TARGET_SECONDS: Final = 120
"""QL005: AWS NLB/ALB IP targets, deregistration when not tuned."""

GKE_NEG_SECONDS: Final = 60
"""QL005: GKE container-native load balancing (NEG)."""
