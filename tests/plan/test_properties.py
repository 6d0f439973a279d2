"""Property tests: whatever users write, the parser answers with a plan or its own error."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quiesce import annotations, config, durations, plan

from .specs import web

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [annotations.PREFIX + key for key in plan.USER_KEYS]
    + ["state.quiesce.dev/plan-hash", "quiesce.dev/bogus", "quiesce.dev/", "app.kubernetes.io/name"]
) | st.text(max_size=20)
TYPICAL = st.sampled_from(
    [
        "0",
        "1s",
        "20s",
        "-1s",
        "1m30s",
        "6h",
        "1.5s",
        "SIGQUIT",
        "9",
        "64",
        "true",
        "no",
        "app",
        "app,web",
        "a,,b",
        "7979",
        "8080",
        "http",
        "grpc",
        "replace",
        "native",
        "container",
        "http://127.0.0.1:8080/quit",
        "",
        " ",
    ]
)
VALUES = TYPICAL | st.text(max_size=12) | JSON

HOOKS = st.one_of(
    st.fixed_dictionaries({"sleep": st.fixed_dictionaries({"seconds": SCALARS})}),
    st.fixed_dictionaries({"exec": st.fixed_dictionaries({"command": JSON})}),
    st.fixed_dictionaries(
        {
            "exec": st.fixed_dictionaries(
                {
                    "command": st.sampled_from(
                        [
                            ["sleep", "5"],
                            ["sh", "-c", "sleep 3m"],
                            ["/bin/drain"],
                            ["sleep", "99999999999999"],
                        ]
                    )
                }
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "httpGet": st.fixed_dictionaries(
                {"port": st.sampled_from([8080, "http", "nope", 0, None])},
                optional={
                    "path": JSON,
                    "scheme": st.sampled_from(["HTTP", "HTTPS", "FTP"]),
                    "host": JSON,
                    "httpHeaders": JSON,
                },
            )
        }
    ),
    JSON,
)
CONTAINERS = st.fixed_dictionaries(
    {"name": st.sampled_from(["app", "web", "admin", plan.SIDECAR_NAME, 7])},
    optional={
        "ports": st.lists(
            st.fixed_dictionaries(
                {"containerPort": st.sampled_from([8080, 7979, 9090, "x", 0])},
                optional={"name": st.sampled_from(["http", "grpc", 5])},
            ),
            max_size=3,
        ),
        "lifecycle": st.fixed_dictionaries({}, optional={"preStop": HOOKS, "postStart": JSON}),
        "readinessProbe": st.fixed_dictionaries(
            {"httpGet": st.fixed_dictionaries({"port": st.sampled_from([8080, "http", "x", None])})}
        ),
    },
)
POD_SPECS = st.one_of(
    st.fixed_dictionaries(
        {"containers": st.lists(CONTAINERS, max_size=3)},
        optional={
            "terminationGracePeriodSeconds": st.sampled_from([0, 30, 90, -1, "30", None, True]),
            "initContainers": st.lists(CONTAINERS, max_size=1),
        },
    ),
    JSON,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, VALUES, max_size=8), POD_SPECS)
def test_any_input_gives_a_consistent_plan_or_a_plan_error(
    annotations: dict[Any, Any], pod_spec: Any
) -> None:
    try:
        p = plan.build_plan(annotations, pod_spec)
    except plan.PlanError as exc:
        assert exc.errors, "a PlanError always says why"
        assert all(str(error) for error in exc.errors)
        return
    total = p.deregister_timeout + p.converge_max + p.kept_hook_timeout + p.drain_timeout + p.margin
    assert math.isclose(total, p.grace_period_seconds, abs_tol=1e-6)
    assert p.converge_min <= p.converge_max and p.quiet_window <= p.converge_max
    assert isinstance(p.grace_period_seconds, int) and p.grace_period_seconds >= 1
    assert plan.ShutdownPlan.from_json(p.to_json()) == p


DURATIONS = st.integers(min_value=0, max_value=10 * 60 * 1000).map(
    lambda ms: durations.format(ms * durations.MILLISECOND)
)


@given(
    dereg=DURATIONS,
    cmin=DURATIONS,
    cmax=DURATIONS,
    drain=DURATIONS,
    margin=DURATIONS,
    template_grace=st.none() | st.integers(min_value=0, max_value=3600),
)
def test_the_budget_adds_up_to_the_grace_and_never_shortens_it(
    dereg: str, cmin: str, cmax: str, drain: str, margin: str, template_grace: int | None
) -> None:
    annotations = {
        "quiesce.dev/deregister-timeout": dereg,
        "quiesce.dev/converge-min": cmin,
        "quiesce.dev/converge-max": cmax,
        "quiesce.dev/quiet-window": "0s",
        "quiesce.dev/drain-timeout": drain,
        "quiesce.dev/margin": margin,
    }
    spec = web() if template_grace is None else web(terminationGracePeriodSeconds=template_grace)
    try:
        p = plan.build_plan(annotations, spec)
    except plan.PlanError as exc:
        assert [e.annotation for e in exc.errors] == ["quiesce.dev/converge-min"]
        assert durations.parse(cmin) > durations.parse(cmax)
        return
    phases = [durations.parse(v) for v in (dereg, cmax, drain, margin)]
    needed = math.ceil(sum(phases) / durations.SECOND)
    assert p.grace_period_seconds == max(needed, template_grace or 0, 1)
    total = p.deregister_timeout + p.converge_max + p.drain_timeout + p.margin
    assert math.isclose(total, p.grace_period_seconds, abs_tol=1e-6)
    assert p.margin >= durations.parse(margin) / durations.SECOND - 1e-9


@given(grace=st.integers(min_value=1, max_value=600), margin=DURATIONS)
def test_an_explicit_grace_is_exact_or_an_error(grace: int, margin: str) -> None:
    annotations = {"quiesce.dev/grace-period": f"{grace}s", "quiesce.dev/margin": margin}
    try:
        p = plan.build_plan(annotations, web())
    except plan.PlanError as exc:
        assert [e.annotation for e in exc.errors] == ["quiesce.dev/grace-period"]
        return
    assert p.grace_period_seconds == grace
    assert p.converge_max >= p.converge_min


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["plan", "sidecar", "consul", "operator"]), JSON) | JSON)
def test_any_configuration_loads_or_raises_a_config_error(data: Any) -> None:
    try:
        config.load_config(data if isinstance(data, dict) else {"plan": data})
    except config.ConfigError as exc:
        assert exc.errors


@settings(max_examples=200)
@given(st.data())
def test_any_tampering_with_a_serialised_plan_is_a_format_error_or_a_valid_plan(
    data: st.DataObject,
) -> None:
    serialised = json.loads(plan.build_plan({}, web()).to_json())
    key = data.draw(st.sampled_from(sorted(serialised)))
    serialised[key] = data.draw(JSON)
    try:
        p = plan.ShutdownPlan.from_json(json.dumps(serialised))
    except plan.PlanFormatError as exc:
        assert exc.errors
        return
    assert plan.ShutdownPlan.from_json(p.to_json()) == p
