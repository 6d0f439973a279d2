"""The ShutdownPlan: one shutdown budget that the operator and the sidecar agree on.

The operator computes a plan from a workload's ``quiesce.dev/*`` annotations and
the facts of its pod template; the sidecar receives the same plan
(``QUIESCE_PLAN``) and enforces it. One pure package, so the two sides cannot
drift; standard library only (no kopf, kubernetes, aiohttp, consul, yaml, no I/O).

- :mod:`~quiesce.plan.model`     the frozen plan, its constants and error types;
- :mod:`~quiesce.plan.codec`     the plan as versioned JSON, and its hash;
- :mod:`~quiesce.plan.fields`    one annotation or setting into a value or an error;
- :mod:`~quiesce.plan.podspec`   a defensive view of the pod spec and its preStop hooks;
- :mod:`~quiesce.plan.budget`    the nanosecond arithmetic that fits the phases into the grace;
- :mod:`~quiesce.plan.build`     :func:`build_plan`: annotations and pod spec in, plan out;
- :mod:`~quiesce.plan.defaults`  the configuration's ``plan:`` mapping into PlanDefaults;
- :mod:`~quiesce.plan.outer`     the cluster's budgets (node shutdown, autoscaler, node
  group drain) that can end a pod before its grace, and where they cut the plan.

The sidecar imports ``model`` and ``codec`` only. The names below are re-exported
lazily (``from quiesce import plan as plans; plans.build_plan``) so that importing
one submodule never loads the others: ``plans.X`` loads X's module on first use.
"""

from __future__ import annotations

import importlib
import typing
from typing import Any, Final

if typing.TYPE_CHECKING:
    from quiesce.plan.build import build_plan as build_plan
    from quiesce.plan.defaults import DEFAULTS_KEYS as DEFAULTS_KEYS
    from quiesce.plan.defaults import parse_defaults as parse_defaults
    from quiesce.plan.model import FORMAT_VERSION as FORMAT_VERSION
    from quiesce.plan.model import GRACE_SOURCES as GRACE_SOURCES
    from quiesce.plan.model import MAX_DURATION as MAX_DURATION
    from quiesce.plan.model import MAX_SIGNAL as MAX_SIGNAL
    from quiesce.plan.model import PRESTOP_PATH as PRESTOP_PATH
    from quiesce.plan.model import SIDECAR_MODES as SIDECAR_MODES
    from quiesce.plan.model import SIDECAR_NAME as SIDECAR_NAME
    from quiesce.plan.model import SIGNALS as SIGNALS
    from quiesce.plan.model import TOKEN_HEADER as TOKEN_HEADER
    from quiesce.plan.model import UNGRACEFUL_SIGNALS as UNGRACEFUL_SIGNALS
    from quiesce.plan.model import USER_KEYS as USER_KEYS
    from quiesce.plan.model import FieldError as FieldError
    from quiesce.plan.model import KeptHook as KeptHook
    from quiesce.plan.model import Phase as Phase
    from quiesce.plan.model import PlanDefaults as PlanDefaults
    from quiesce.plan.model import PlanError as PlanError
    from quiesce.plan.model import PlanFormatError as PlanFormatError
    from quiesce.plan.model import ShutdownPlan as ShutdownPlan
    from quiesce.plan.model import render_errors as render_errors
    from quiesce.values import parse_bool as parse_bool
    from quiesce.values import parse_signal as parse_signal
    from quiesce.values import signal_name as signal_name

# Where each re-exported name lives (the value grammars are quiesce.values').
_HOMES: Final[dict[str, str]] = {
    **dict.fromkeys(
        (
            "FORMAT_VERSION",
            "GRACE_SOURCES",
            "MAX_DURATION",
            "MAX_SIGNAL",
            "PRESTOP_PATH",
            "SIDECAR_MODES",
            "SIDECAR_NAME",
            "SIGNALS",
            "TOKEN_HEADER",
            "UNGRACEFUL_SIGNALS",
            "USER_KEYS",
            "FieldError",
            "KeptHook",
            "Phase",
            "PlanDefaults",
            "PlanError",
            "PlanFormatError",
            "ShutdownPlan",
            "render_errors",
        ),
        "quiesce.plan.model",
    ),
    "build_plan": "quiesce.plan.build",
    "DEFAULTS_KEYS": "quiesce.plan.defaults",
    "parse_defaults": "quiesce.plan.defaults",
    "parse_bool": "quiesce.values",
    "parse_signal": "quiesce.values",
    "signal_name": "quiesce.values",
}

__all__ = sorted(_HOMES)


# Hidden from type checkers: they see the names above, so a typo (plans.ShutdwonPlan)
# stays an error instead of an Any.
if not typing.TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        """Load a re-exported name's module on first use (PEP 562)."""
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_HOMES))
