"""build_plan: annotations + pod template facts -> one budget, or every error at once."""

from __future__ import annotations

from typing import Any

import pytest

from quiesce import plan

from .specs import web, web_with_prestop

INJECT = {"quiesce.dev/inject": "true"}


def errors_of(annotations: dict[str, Any], spec: dict[str, Any] | None = None) -> list[str]:
    with pytest.raises(plan.PlanError) as caught:
        plan.build_plan(annotations, web() if spec is None else spec)
    return [str(error) for error in caught.value.errors]


def budget_sum(p: plan.ShutdownPlan) -> float:
    return p.deregister_timeout + p.converge_max + p.kept_hook_timeout + p.drain_timeout + p.margin


def test_inject_alone_gives_the_documented_defaults_within_45_seconds() -> None:
    p = plan.build_plan(INJECT, web())
    assert (p.deregister_timeout, p.converge_min, p.converge_max, p.quiet_window) == (5, 2, 20, 1)
    assert (p.drain_timeout, p.margin, p.kept_hook_timeout) == (0, 10, 0)
    assert p.grace_period_seconds == 35 and p.grace_source == "derived"
    assert p.signal is None and p.shutdown_url is None and p.returns_hook()
    assert p.containers == ("app",) and p.port == 7979 and p.consul_services == ()
    assert p.sidecar_mode == "auto" and p.auto_upgrade is False and p.epsilon == 1e-3
    assert p.version == 1


def test_probe_ports_are_the_targets_probe_ports_named_or_numbered() -> None:
    assert plan.build_plan(INJECT, web()).probe_ports == (8080, 8081)


def test_every_annotation_is_read() -> None:
    p = plan.build_plan(
        {
            "quiesce.dev/inject": "yes",
            "quiesce.dev/consul-service": "web, web-admin,web",
            "quiesce.dev/deregister-timeout": "3s",
            "quiesce.dev/converge-min": "1s",
            "quiesce.dev/converge-max": "1m",
            "quiesce.dev/quiet-window": "500ms",
            "quiesce.dev/drain-timeout": "15s",
            "quiesce.dev/margin": "4s",
            "quiesce.dev/signal": "SIGQUIT",
            "quiesce.dev/containers": "app",
            "quiesce.dev/port": "7000",
            "quiesce.dev/sidecar-mode": "container",
            "quiesce.dev/long-lived-ports": "grpc,8443",
            "quiesce.dev/auto-upgrade": "True",
            "quiesce.dev/lint-ignore": "QL003",
        },
        web(),
    )
    assert p.consul_services == ("web", "web-admin")
    assert (p.deregister_timeout, p.converge_min, p.converge_max) == (3, 1, 60)
    assert (p.quiet_window, p.drain_timeout, p.margin) == (0.5, 15, 4)
    assert p.signal == 3 and p.port == 7000 and p.sidecar_mode == "container"
    assert p.long_lived_ports == (8443, 9090) and p.auto_upgrade is True
    assert p.grace_period_seconds == 3 + 60 + 15 + 4


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("SIGQUIT", 3),
        ("QUIT", 3),
        ("quit", 3),
        ("3", 3),
        ("SIGTERM", 15),
        ("SIGUSR1", 10),
        ("40", 40),
    ],
)
def test_signals_by_name_or_number(value: str, number: int) -> None:
    assert plan.build_plan({"quiesce.dev/signal": value}, web()).signal == number


@pytest.mark.parametrize(
    ("value", "expected"),
    [(v, True) for v in ("true", "True", "TRUE", "1", "yes", "on", "t")]
    + [(v, False) for v in ("false", "False", "0", "no", "off", "f")],
)
def test_booleans_as_kubernetes_users_write_them(value: str, expected: bool) -> None:
    assert plan.build_plan({"quiesce.dev/auto-upgrade": value}, web()).auto_upgrade is expected


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            {"quiesce.dev/converge-max": "20x"},
            'quiesce.dev/converge-max: "20x" is not a duration; '
            "expected Go syntax such as 500ms, 10s, 1m30s",
        ),
        (
            {"quiesce.dev/margin": "10"},
            'quiesce.dev/margin: "10" is not a duration; '
            'expected Go syntax such as 500ms, 10s, 1m30s (did you mean "10s"?)',
        ),
        (
            {"quiesce.dev/drain-timeout": "-5s"},
            'quiesce.dev/drain-timeout: "-5s" is negative; expected a duration of 0s or more',
        ),
        (
            {"quiesce.dev/converge-max": "7h"},
            'quiesce.dev/converge-max: "7h" is out of range; expected at most 6h0m0s',
        ),
        (
            {"quiesce.dev/convrge-max": "20s"},
            'quiesce.dev/convrge-max: "20s" is set on an unknown key; '
            "expected quiesce.dev/converge-max (the closest known key)",
        ),
        (
            {"quiesce.dev/inject": "ture"},
            'quiesce.dev/inject: "ture" is not a boolean; expected a boolean: '
            "true/false, yes/no, on/off, 1/0, t/f or y/n",
        ),
        (
            {"quiesce.dev/inject": True},
            'quiesce.dev/inject: "true" is not a string; expected a quoted string in YAML, '
            'e.g. "true"',
        ),
        (
            {"quiesce.dev/signal": "SIGFOO"},
            'quiesce.dev/signal: "SIGFOO" is not a signal; '
            "expected a signal name or number such as SIGQUIT, QUIT or 3",
        ),
        (
            {"quiesce.dev/signal": "9"},
            'quiesce.dev/signal: "9" cannot stop an app gracefully; expected a signal the app '
            "handles to stop gracefully, such as SIGTERM, SIGQUIT or SIGINT",
        ),
        (
            {"quiesce.dev/signal": "QUIT", "quiesce.dev/shutdown-url": "http://127.0.0.1:8080/q"},
            'quiesce.dev/signal: "QUIT" conflicts with quiesce.dev/shutdown-url; '
            "expected either quiesce.dev/signal or quiesce.dev/shutdown-url",
        ),
        (
            {"quiesce.dev/shutdown-url": "/quit"},
            'quiesce.dev/shutdown-url: "/quit" is not a URL; '
            "expected an absolute http(s) URL such as http://127.0.0.1:8080/shutdown",
        ),
        (
            {"quiesce.dev/containers": "ap"},
            'quiesce.dev/containers: "ap" names no container "ap"; '
            'expected one of the pod\'s containers: app (did you mean "app"?)',
        ),
        (
            {"quiesce.dev/containers": "app,,"},
            'quiesce.dev/containers: "app,," has an empty item; '
            "expected comma-separated names such as a,b",
        ),
        (
            {"quiesce.dev/port": "8080"},
            'quiesce.dev/port: "8080" is already a port of container "app"; '
            "expected a port no container uses (set quiesce.dev/port)",
        ),
        (
            {"quiesce.dev/port": "70000"},
            'quiesce.dev/port: "70000" is not a port; expected a port number from 1 to 65535',
        ),
        (
            {"quiesce.dev/long-lived-ports": "websocket"},
            'quiesce.dev/long-lived-ports: "websocket" names no port "websocket"; expected port '
            "numbers (1-65535) or port names of the target containers, comma-separated",
        ),
        (
            {"quiesce.dev/sidecar-mode": "sidecar"},
            'quiesce.dev/sidecar-mode: "sidecar" is not a mode; expected auto, native or container',
        ),
        (
            {"quiesce.dev/exec-hook": "keep"},
            'quiesce.dev/exec-hook: "keep" is not a choice; '
            'expected "replace" (leave the annotation out to refuse exec hooks)',
        ),
        (
            {"quiesce.dev/converge-min": "30s"},
            'quiesce.dev/converge-min: "30s" contradicts the other bound; '
            "expected quiesce.dev/converge-min <= quiesce.dev/converge-max (30s > 20s)",
        ),
        (
            {"quiesce.dev/quiet-window": "30s"},
            'quiesce.dev/quiet-window: "30s" contradicts the other bound; expected '
            "quiesce.dev/quiet-window <= quiesce.dev/converge-max (30s > 20s): "
            "quiet can never be observed",
        ),
        (
            {"quiesce.dev/grace-period": "20s", "quiesce.dev/converge-max": "15s"},
            'quiesce.dev/grace-period: "20s" cannot fit the phases; '
            "expected at least 30s (5s deregister + 15s converge + 10s margin), or shorter phases",
        ),
        (
            {"quiesce.dev/grace-period": "10s"},
            'quiesce.dev/grace-period: "10s" cannot fit the phases; expected at least 17s '
            "(5s deregister + 10s margin + converge of at least 2s), or shorter phases",
        ),
        (
            {"quiesce.dev/grace-period": "30.5s"},
            'quiesce.dev/grace-period: "30.5s" is not a whole number of seconds; expected whole '
            "seconds such as 45s (terminationGracePeriodSeconds is an integer)",
        ),
        (
            {"quiesce.dev/grace-period": "0s"},
            'quiesce.dev/grace-period: "0s" is zero; expected at least 1s (0 kills at once)',
        ),
    ],
)
def test_bad_annotations_name_the_key_the_value_and_what_is_expected(
    annotations: dict[str, Any], message: str
) -> None:
    assert errors_of(annotations) == [message]


def test_a_ceiling_below_floor_and_quiet_window_gets_both_errors() -> None:
    assert errors_of({"quiesce.dev/converge-max": "500ms"}) == [
        'quiesce.dev/converge-max: "500ms" contradicts the other bound; '
        "expected quiesce.dev/converge-min <= quiesce.dev/converge-max (2s > 500ms)",
        'quiesce.dev/converge-max: "500ms" contradicts the other bound; expected '
        "quiesce.dev/quiet-window <= quiesce.dev/converge-max (1s > 500ms): "
        "quiet can never be observed",
    ]


def test_all_errors_are_reported_at_once() -> None:
    messages = errors_of(
        {
            "quiesce.dev/convrge-max": "20s",
            "quiesce.dev/margin": "ten",
            "quiesce.dev/signal": "KILL",
            "quiesce.dev/port": "8080",
            "quiesce.dev/inject": "maybe",
        }
    )
    assert [m.split(":")[0] for m in messages] == [
        "quiesce.dev/convrge-max",
        "quiesce.dev/inject",
        "quiesce.dev/margin",
        "quiesce.dev/signal",
        "quiesce.dev/port",
    ]


def test_operator_state_and_foreign_annotations_are_not_user_input() -> None:
    p = plan.build_plan(
        {
            "state.quiesce.dev/plan-hash": "whatever",
            "state.quiesce.dev/anything-new": "x",
            "deployment.kubernetes.io/revision": "3",
            **INJECT,
        },
        web(),
    )
    assert p.grace_period_seconds == 35


def test_an_unknown_key_far_from_any_lists_every_known_key() -> None:
    (message,) = errors_of({"quiesce.dev/zzz": "1"})
    assert message.startswith('quiesce.dev/zzz: "1" is set on an unknown key; expected one of ')
    assert "quiesce.dev/converge-max" in message and "quiesce.dev/lint-ignore" in message


# --- the grace period ---------------------------------------------------------------


def test_explicit_grace_gives_what_is_left_to_the_margin() -> None:
    p = plan.build_plan({"quiesce.dev/grace-period": "1m"}, web())
    assert p.grace_period_seconds == 60 and p.grace_source == "annotation"
    assert p.converge_max == 20 and p.margin == 35
    assert "25s of the 60s grace left over go to the margin" in p.notes


def test_explicit_short_grace_shrinks_an_unchosen_ceiling_and_says_so() -> None:
    p = plan.build_plan({"quiesce.dev/grace-period": "25s"}, web())
    assert p.grace_period_seconds == 25 and p.converge_max == 10 and p.margin == 10
    assert "quiesce.dev/converge-max is 10s: what the 25s grace leaves" in p.notes


def test_a_larger_template_grace_is_kept_and_the_extra_goes_to_the_margin() -> None:
    p = plan.build_plan(INJECT, web(terminationGracePeriodSeconds=90))
    assert p.grace_period_seconds == 90 and p.grace_source == "template" and p.margin == 65
    assert p.template_grace == 90
    assert any("terminationGracePeriodSeconds 90 is kept" in note for note in p.notes)


def test_a_smaller_template_grace_is_raised_and_the_plan_says_so() -> None:
    p = plan.build_plan(INJECT, web(terminationGracePeriodSeconds=30))
    assert p.grace_period_seconds == 35 and p.grace_source == "derived"
    assert "terminationGracePeriodSeconds raised from 30 to 35" in p.notes


def test_the_grace_annotation_wins_over_the_template_grace() -> None:
    p = plan.build_plan({"quiesce.dev/grace-period": "40s"}, web(terminationGracePeriodSeconds=90))
    assert p.grace_period_seconds == 40
    assert any("terminationGracePeriodSeconds 90 is replaced" in note for note in p.notes)


def test_fractional_budgets_round_the_grace_up_and_the_margin_absorbs_it() -> None:
    p = plan.build_plan({"quiesce.dev/margin": "2.5s"}, web())
    assert p.grace_period_seconds == 28 and p.margin == 3


def test_a_bad_template_grace_is_an_error() -> None:
    assert errors_of(INJECT, web(terminationGracePeriodSeconds="30")) == [
        'spec.terminationGracePeriodSeconds: "30" is not a number of seconds; '
        "expected a non-negative integer"
    ]


# --- existing preStop hooks ---------------------------------------------------------


@pytest.mark.parametrize(
    "hook",
    [
        {"sleep": {"seconds": 15}},
        {"exec": {"command": ["sleep", "15"]}},
        {"exec": {"command": ["/bin/sleep", "15s"]}},
        {"exec": {"command": ["sh", "-c", "sleep 15"]}},
        {"exec": {"command": ["/bin/sh", "-c", "  sleep 15; "]}},
    ],
)
def test_a_sleep_hook_is_folded_into_the_convergence_floor(hook: dict[str, Any]) -> None:
    p = plan.build_plan(INJECT, web_with_prestop(hook))
    assert p.sleep_absorbed == 15 and p.converge_min == 15 and p.converge_max == 20
    assert p.kept_hook is None and not p.exec_hook_replaced


def test_a_sleep_longer_than_the_default_ceiling_raises_it() -> None:
    p = plan.build_plan(INJECT, web_with_prestop({"sleep": {"seconds": 30}}))
    assert p.converge_min == 30 and p.converge_max == 30 and p.grace_period_seconds == 45
    assert "quiesce.dev/converge-max raised to 30s, the existing preStop sleep" in p.notes


def test_a_sleep_longer_than_a_chosen_ceiling_is_an_error() -> None:
    assert errors_of(
        {"quiesce.dev/converge-max": "10s"}, web_with_prestop({"sleep": {"seconds": 30}})
    ) == [
        'quiesce.dev/converge-max: "10s" is shorter than the existing preStop sleep; expected at '
        "least 30s, the existing preStop sleep that quiesce folds into the convergence floor"
    ]


def test_an_http_hook_is_kept_and_budgeted() -> None:
    hook = {
        "httpGet": {
            "path": "/drain",
            "port": "http",
            "httpHeaders": [{"name": "X-Drain", "value": "1"}],
        }
    }
    p = plan.build_plan(INJECT, web_with_prestop(hook))
    assert p.kept_hook == plan.KeptHook(
        container="app",
        path="/drain",
        port=8080,
        scheme="HTTP",
        host=None,
        headers=(("X-Drain", "1"),),
    )
    assert p.kept_hook_timeout == 5 and p.grace_period_seconds == 40
    assert p.kept_hook.url() == "http://<pod-ip>:8080/drain"


def test_hook_timeout_counts_only_when_there_is_a_hook() -> None:
    p = plan.build_plan({"quiesce.dev/hook-timeout": "8s"}, web())
    assert p.kept_hook_timeout == 0 and p.grace_period_seconds == 35
    assert "quiesce.dev/hook-timeout is unused: no target has an httpGet preStop" in p.notes


def test_an_exec_hook_is_an_error_unless_replaced() -> None:
    spec = web_with_prestop({"exec": {"command": ["/app/drain", "--now"]}})
    assert errors_of(INJECT, spec) == [
        'quiesce.dev/exec-hook: "/app/drain --now" is the preStop exec of container '
        '"app", which the sidecar cannot run; expected quiesce.dev/exec-hook: "replace" to drop '
        "it (it is restored on un-inject), or an httpGet or sleep hook"
    ]
    p = plan.build_plan({"quiesce.dev/exec-hook": "replace"}, spec)
    assert p.exec_hook_replaced and p.kept_hook is None


def test_two_kept_http_hooks_are_an_error() -> None:
    spec = web_with_prestop({"httpGet": {"path": "/a", "port": 8080}})
    spec["containers"].append(
        {"name": "admin", "image": "x", "lifecycle": {"preStop": {"httpGet": {"port": 9000}}}}
    )
    assert errors_of(INJECT, spec) == [
        'quiesce.dev/containers: "app,admin" includes "app" and "admin", both with an httpGet '
        "preStop; expected targets of which at most one has an httpGet preStop"
    ]
    assert plan.build_plan({"quiesce.dev/containers": "admin"}, spec).kept_hook is not None


def test_an_already_injected_template_is_refused() -> None:
    spec = web_with_prestop(
        {
            "httpGet": {
                "path": "/prestop",
                "port": 7979,
                "httpHeaders": [{"name": "X-Quiesce-Token", "value": "t"}],
            }
        }
    )
    assert errors_of(INJECT, spec) == [
        'quiesce.dev/inject: "true" meets a template already injected: container "app" calls '
        "the sidecar; expected the original template (quiesce's template.restore gives it back)"
    ]


def test_the_sidecar_is_never_a_default_target() -> None:
    spec = web()
    spec["containers"].append({"name": plan.SIDECAR_NAME, "image": "q"})
    assert plan.build_plan(INJECT, spec).containers == ("app",)


def test_a_pod_without_containers_is_an_error() -> None:
    assert errors_of(INJECT, {"containers": []}) == [
        'spec.containers: "" has no container; expected at least one container besides '
        "quiesce-sidecar"
    ]


def test_budget_adds_up_to_the_grace_and_timeline_ends_at_it() -> None:
    p = plan.build_plan(
        {"quiesce.dev/signal": "QUIT", "quiesce.dev/drain-timeout": "5s"},
        web_with_prestop({"httpGet": {"path": "/drain", "port": 8080}}),
    )
    assert budget_sum(p) == p.grace_period_seconds == 45
    names = [phase.name for phase in p.timeline()]
    assert names == ["deregister", "converge", "app hook", "signal", "drain", "exit", "kill"]
    assert p.timeline()[-1].start == 45
    assert p.timeline()[3].what == "send SIGQUIT to the app's main process"


def test_when_the_kubelet_signals_drain_comes_before_the_hook_returns() -> None:
    p = plan.build_plan({"quiesce.dev/drain-timeout": "5s"}, web())
    assert [phase.name for phase in p.timeline()][2:4] == ["drain", "signal"]
