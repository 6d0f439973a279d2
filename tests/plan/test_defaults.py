"""Every promised default, pinned; and the configuration file that overrides them."""

from __future__ import annotations

import dataclasses

import pytest

from quiesce import config, plan


def test_plan_defaults_are_the_documented_ones() -> None:
    d = plan.PlanDefaults()
    assert d.deregister_timeout == 5.0
    assert d.converge_min == 2.0
    assert d.converge_max == 20.0
    assert d.quiet_window == 1.0
    assert d.drain_timeout == 0.0
    assert d.margin == 10.0
    assert d.hook_timeout == 5.0
    assert d.port == 7979
    assert d.sidecar_mode == "auto"
    assert d.auto_upgrade is False
    assert d.epsilon == 1e-3
    total = d.deregister_timeout + d.converge_max + d.drain_timeout + d.margin
    assert total <= 45, "inject alone must stay within ~30-45 s"


def test_config_defaults_are_the_documented_ones() -> None:
    c = config.load_config(None)
    assert c.sidecar.image == "ghcr.io/quiesce-dev/quiesce:0.1.0"
    assert c.sidecar.log_format == "json" and c.sidecar.run_as_user == 65532
    assert c.consul.address == "http://$(HOST_IP):8500"
    assert c.consul.token_secret is None and c.consul.ca_secret is None
    assert c.plan == plan.PlanDefaults()
    outer = c.outer_budgets
    assert outer.autoscaler_max_graceful_termination == 600 * 10**9
    assert outer.node_shutdown is None and outer.node_group_drain_timeout is None


def test_the_configuration_file_sets_plan_defaults_with_annotation_keys() -> None:
    c = config.load_config(
        """
plan:
  converge-max: 30s
  margin: 5s
  port: 7000
  auto-upgrade: true
  quiet-epsilon: 0.0001
sidecar:
  image: registry.local/quiesce:dev
  logFormat: text
consul:
  address: https://consul.consul.svc:8501
  tokenSecret: {name: consul-acl, key: token}
  caSecret: {name: consul-ca, key: tls.crt}
operator:
  anything: is for the operator to validate
"""
    )
    assert (c.plan.converge_max, c.plan.margin, c.plan.port) == (30.0, 5.0, 7000)
    assert c.plan.auto_upgrade is True and c.plan.epsilon == 1e-4
    assert c.sidecar.image == "registry.local/quiesce:dev" and c.sidecar.log_format == "text"
    assert c.consul.token_secret == config.SecretRef("consul-acl", "token")
    assert c.consul.ca_secret == config.SecretRef("consul-ca", "tls.crt")
    p = plan.build_plan({}, {"containers": [{"name": "app"}]}, c.plan)
    assert p.converge_max == 30 and p.port == 7000 and p.grace_period_seconds == 40


def test_a_bad_configuration_names_every_bad_key() -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load_config(
            {
                "plan": {"converge-max": 20, "covnerge-min": "1s", "signal": "QUIT"},
                "sidecar": {"logFormat": "xml", "imag": "x"},
                "consul": {"tokenSecret": "acl"},
            }
        )
    assert [str(e) for e in caught.value.errors] == [
        'plan.converge-max: "20" is not a duration; '
        'expected Go syntax such as 500ms, 10s, 1m30s (did you mean "20s"?)',
        'plan.covnerge-min: "1s" is set on an unknown key; '
        "expected plan.converge-min (the closest known key)",
        'plan.signal: "QUIT" is set on an unknown key; expected one of plan.deregister-timeout, '
        "plan.converge-min, plan.converge-max, plan.quiet-window, plan.hook-timeout, "
        "plan.drain-timeout, plan.margin, plan.port, plan.sidecar-mode, plan.auto-upgrade, "
        "plan.quiet-epsilon",
        'sidecar.imag: "x" is an unknown key; expected sidecar.image',
        'sidecar.logFormat: "xml" is not a choice; expected json or text',
        'consul.tokenSecret: "acl" is not a Secret key; expected {name: <secret>, key: <key>}',
    ]


def test_invalid_yaml_is_a_config_error() -> None:
    with pytest.raises(config.ConfigError, match="is not valid YAML"):
        config.load_config("plan: [")


def test_every_plan_default_is_set_by_exactly_one_configuration_key() -> None:
    # A value for each key that differs from the built-in default.
    given = {
        "deregister-timeout": "6s",
        "converge-min": "3s",
        "converge-max": "21s",
        "quiet-window": "2s",
        "hook-timeout": "4s",
        "drain-timeout": "1s",
        "margin": "9s",
        "port": 7980,
        "sidecar-mode": "native",
        "auto-upgrade": True,
        "quiet-epsilon": 0.01,
    }
    assert sorted(given) == sorted(plan.DEFAULTS_KEYS)
    base = plan.PlanDefaults()
    changed = set()
    for key, value in given.items():
        one = plan.parse_defaults({key: value})
        fields = {
            f for f in dataclasses.fields(one) if getattr(one, f.name) != getattr(base, f.name)
        }
        assert len(fields) == 1, key
        changed |= {f.name for f in fields}
    assert changed == {f.name for f in dataclasses.fields(base)}
