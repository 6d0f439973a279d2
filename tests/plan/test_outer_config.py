"""The configuration's ``outerBudgets:``: every promised default, every value, every error."""

from __future__ import annotations

from typing import Any

import pytest

from quiesce import config
from quiesce.plan import outer

S = 1_000_000_000


def budgets(section: Any) -> outer.OuterBudgets:
    return config.load_config({"outerBudgets": section}).outer_budgets


def errors(section: Any) -> list[str]:
    with pytest.raises(config.ConfigError) as caught:
        config.load_config({"outerBudgets": section})
    return [str(e) for e in caught.value.errors]


def test_the_defaults_check_the_autoscalers_600s_and_nothing_else() -> None:
    default = config.load_config(None).outer_budgets
    assert default == outer.OuterBudgets() == budgets({})
    assert default.autoscaler_max_graceful_termination == 600 * S
    assert default.node_shutdown is None and default.node_group_drain_timeout is None


def test_node_shutdown_takes_the_kubelets_names_and_go_durations() -> None:
    got = budgets(
        {"nodeShutdown": {"shutdownGracePeriod": "1m", "shutdownGracePeriodCriticalPods": "10s"}}
    )
    assert got.node_shutdown == outer.NodeShutdown(60 * S, 10 * S)
    only_total = budgets({"nodeShutdown": {"shutdownGracePeriod": "30s"}})
    assert only_total.node_shutdown == outer.NodeShutdown(30 * S, 0)


def test_by_pod_priority_entries_are_sorted_by_priority() -> None:
    got = budgets(
        {
            "nodeShutdown": {
                "shutdownGracePeriodByPodPriority": [
                    {"priority": 100000, "shutdownGracePeriodSeconds": 120},
                    {"priority": 0, "shutdownGracePeriodSeconds": 20},
                ]
            }
        }
    )
    assert got.node_shutdown == outer.NodeShutdown(
        by_pod_priority=(outer.PriorityGrace(0, 20), outer.PriorityGrace(100000, 120))
    )


@pytest.mark.parametrize("off", ["off", None, False])
def test_off_null_and_false_switch_a_budget_off(off: Any) -> None:
    got = budgets({"autoscalerMaxGracefulTermination": off, "nodeGroupDrainTimeout": off})
    assert got.autoscaler_max_graceful_termination is None
    assert got.node_group_drain_timeout is None


def test_the_drain_timeout_and_autoscaler_maximum_are_durations() -> None:
    got = budgets({"autoscalerMaxGracefulTermination": "15m", "nodeGroupDrainTimeout": "5m"})
    assert got.autoscaler_max_graceful_termination == 900 * S
    assert got.node_group_drain_timeout == 300 * S


def test_every_bad_value_is_named_with_what_was_expected() -> None:
    assert errors(
        {
            "autoscalerMaxGracefulTermination": 600,
            "nodeGroupDrainTimeout": "-1s",
            "nodeShutdwn": {},
            "nodeShutdown": "30s",
        }
    ) == [
        'outerBudgets.nodeShutdwn: "{}" is an unknown key; expected outerBudgets.nodeShutdown',
        'outerBudgets.nodeShutdown: "30s" is not a mapping; expected a mapping',
        'outerBudgets.autoscalerMaxGracefulTermination: "600" is not a duration; expected Go '
        'syntax such as 500ms, 10s, 1m30s (did you mean "600s"?), or "off"',
        'outerBudgets.nodeGroupDrainTimeout: "-1s" is negative; '
        'expected a duration of 0s or more, or "off"',
    ]


def test_node_shutdown_is_refused_where_the_kubelet_refuses_it() -> None:
    assert errors(
        {"nodeShutdown": {"shutdownGracePeriod": "10s", "shutdownGracePeriodCriticalPods": "20s"}}
    ) == [
        'outerBudgets.nodeShutdown.shutdownGracePeriodCriticalPods: "20s" is longer than the '
        "whole shutdown; expected at most shutdownGracePeriod (10s)",
    ]
    both = [{"priority": 0, "shutdownGracePeriodSeconds": 20}]
    assert errors(
        {"nodeShutdown": {"shutdownGracePeriod": "10s", "shutdownGracePeriodByPodPriority": both}}
    ) == [
        "outerBudgets.nodeShutdown.shutdownGracePeriodByPodPriority: "
        "\"[{'priority': 0, 'shutdownGracePeriodSeconds': 20}]\" is set together with "
        "shutdownGracePeriod; expected either it or "
        "shutdownGracePeriod/shutdownGracePeriodCriticalPods, as the kubelet requires",
    ]
    assert errors({"nodeShutdown": {"shutdownGracePeriod": "half a minute", "grace": "1s"}}) == [
        'outerBudgets.nodeShutdown.grace: "1s" is an unknown key; expected one of '
        "shutdownGracePeriod, shutdownGracePeriodCriticalPods, shutdownGracePeriodByPodPriority",
        'outerBudgets.nodeShutdown.shutdownGracePeriod: "half a minute" is not a duration; '
        "expected Go syntax such as 500ms, 10s, 1m30s",
    ]


def test_every_bad_priority_entry_is_named_by_its_index() -> None:
    where = "outerBudgets.nodeShutdown.shutdownGracePeriodByPodPriority"
    entries = [{"priority": "high", "shutdownGracePeriodSeconds": -1, "seconds": 1}, 5]
    assert errors({"nodeShutdown": {"shutdownGracePeriodByPodPriority": entries}}) == [
        f'{where}[0].seconds: "1" is an unknown key; '
        "expected one of priority, shutdownGracePeriodSeconds",
        f'{where}[0].priority: "high" is not an integer; expected an integer, as the kubelet\'s',
        f'{where}[0].shutdownGracePeriodSeconds: "-1" is not whole seconds; '
        "expected an integer of seconds, 0 or more",
        f'{where}[1]: "5" is not a mapping; expected a list of '
        "{priority: <int>, shutdownGracePeriodSeconds: <int >= 0>}",
    ]
    assert errors({"nodeShutdown": {"shutdownGracePeriodByPodPriority": []}}) == [
        f'{where}: "[]" is not a non-empty list; expected a list of '
        "{priority: <int>, shutdownGracePeriodSeconds: <int >= 0>}",
    ]


def test_a_section_that_is_no_mapping_is_an_error() -> None:
    assert errors("600s") == ['outerBudgets: "600s" is not a mapping; expected a mapping']


def test_the_yaml_file_reads_the_same() -> None:
    text = """
outerBudgets:
  nodeShutdown: {shutdownGracePeriod: 30s, shutdownGracePeriodCriticalPods: 10s}
  autoscalerMaxGracefulTermination: off
  nodeGroupDrainTimeout: 15m
"""
    assert config.load_config(text).outer_budgets == outer.OuterBudgets(
        node_shutdown=outer.NodeShutdown(30 * S, 10 * S),
        autoscaler_max_graceful_termination=None,
        node_group_drain_timeout=900 * S,
    )
