"""Helpers for the sidecar's tests: real plans (quiesce.plan), settings, addresses."""

from __future__ import annotations

import math
import socket
from typing import Any

from quiesce import plan as plan_module
from quiesce.sidecar import settings as settings_module


def make_plan(**overrides: Any) -> plan_module.ShutdownPlan:
    """A real ShutdownPlan; the margin absorbs rounding so the budget identity holds."""
    fields: dict[str, Any] = {
        "version": plan_module.FORMAT_VERSION,
        "deregister_timeout": 2.0,
        "converge_min": 0.0,
        "converge_max": 5.0,
        "quiet_window": 0.5,
        "kept_hook_timeout": 0.0,
        "drain_timeout": 0.0,
        "margin": 1.0,
        "grace_period_seconds": 0,
        "grace_source": "derived",
        "template_grace": None,
        "signal": None,
        "shutdown_url": None,
        "containers": (),
        "port": 7979,
        "consul_services": (),
        "long_lived_ports": (),
        "probe_ports": (),
        "kept_hook": None,
        "sleep_absorbed": 0.0,
        "exec_hook_replaced": False,
        "sidecar_mode": "container",
        "auto_upgrade": False,
        "epsilon": 1e-3,
    }
    fields.update(overrides)
    phases = (
        fields["deregister_timeout"]
        + fields["converge_max"]
        + fields["kept_hook_timeout"]
        + fields["drain_timeout"]
    )
    grace = math.ceil(phases + fields["margin"])
    fields["margin"] = grace - phases
    fields["grace_period_seconds"] = grace
    return plan_module.ShutdownPlan(**fields)


def make_settings(**overrides: Any) -> settings_module.Settings:
    plan_overrides = overrides.pop("plan", {})
    base: dict[str, Any] = {
        "plan": make_plan(**plan_overrides),
        "token": "s3cret",
        "pod_name": "web-0",
        "pod_namespace": "default",
        "pod_uid": "uid-web-0",
        "pod_ip": "127.0.0.1",
        "host_ip": "",
        "consul": settings_module.ConsulSettings(backend="none"),
        "idle_sample_interval": 0.2,
        "poll_interval": 0.05,
    }
    base.update(overrides)
    return settings_module.Settings(**base)


def external_ip() -> str:
    """An address of this machine that is not loopback (its connections count as traffic)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        return str(s.getsockname()[0])
