"""The cluster-wide plan defaults, read from the configuration's ``plan:`` mapping.

The operator's configuration file sets defaults for every workload under
``plan:``, with the annotations' short keys (``converge-max: 30s``); this module
reads that mapping into a :class:`model.PlanDefaults` with the same field
readers as the annotations, and every error at once.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from quiesce import durations
from quiesce.plan import fields, model
from quiesce.plan.model import FieldError, PlanDefaults, PlanError

_DECIMAL: Final = re.compile(r"(?=\.?[0-9])[0-9]{0,20}(?:\.[0-9]{0,40})?(?:[eE][-+]?[0-9]{1,3})?")
_Reader = Callable[[str, str, list[FieldError]], Any]


def _seconds(name: str, text: str, errors: list[FieldError]) -> float | None:
    ns = fields.duration(name, text, errors)
    return None if ns is None else durations.to_seconds(ns)


def _mode(name: str, text: str, errors: list[FieldError]) -> str | None:
    if text in model.SIDECAR_MODES:
        return text
    errors.append(FieldError(name, text, " or ".join(model.SIDECAR_MODES), "is not a mode"))
    return None


def _probability(name: str, text: str, errors: list[FieldError]) -> float | None:
    epsilon = math.nan
    stripped = text.strip()
    if _DECIMAL.fullmatch(stripped):  # ASCII only: float() also reads "٠.٥" and "1_0"
        epsilon = float(stripped)
    if 0 < epsilon < 1:
        return epsilon
    errors.append(FieldError(name, text, "a probability such as 0.001", "is not between 0 and 1"))
    return None


# Each key of the plan: mapping, once: the PlanDefaults field it sets and how it is read.
_KEYS: Final[dict[str, tuple[str, _Reader]]] = {
    "deregister-timeout": ("deregister_timeout", _seconds),
    "converge-min": ("converge_min", _seconds),
    "converge-max": ("converge_max", _seconds),
    "quiet-window": ("quiet_window", _seconds),
    "hook-timeout": ("hook_timeout", _seconds),
    "drain-timeout": ("drain_timeout", _seconds),
    "margin": ("margin", _seconds),
    "port": ("port", fields.port),
    "sidecar-mode": ("sidecar_mode", _mode),
    "auto-upgrade": ("auto_upgrade", fields.boolean),
    "quiet-epsilon": ("epsilon", _probability),
}
DEFAULTS_KEYS: Final = tuple(_KEYS)


def parse_defaults(mapping: Mapping[str, Any], *, where: str = "plan") -> PlanDefaults:
    """Cluster-wide defaults from the configuration's ``plan:`` mapping (annotation short keys).

    YAML scalars are accepted as written (``port: 7979``, ``auto-upgrade: false``);
    errors name ``<where>.<key>``.
    """
    if not isinstance(mapping, Mapping):
        raise PlanError(
            [
                FieldError(
                    where,
                    model.show(mapping),
                    "a mapping of annotation short keys",
                    "is not a mapping",
                )
            ]
        )
    errors: list[FieldError] = []
    chosen: dict[str, Any] = {}
    for raw_key, raw in mapping.items():
        name = f"{where}.{raw_key}"
        if raw_key not in _KEYS:
            errors.append(fields.unknown_key(name, raw, str(raw_key), DEFAULTS_KEYS, f"{where}."))
            continue
        text = fields.scalar_text(raw)
        if text is None:
            errors.append(FieldError(name, model.show(raw), "a string", "is not a scalar"))
            continue
        field, read = _KEYS[raw_key]
        value = read(name, text, errors)
        if value is not None:
            chosen[field] = value
    result = dataclasses.replace(PlanDefaults(), **chosen)
    if not errors and result.converge_min > result.converge_max:
        errors.append(
            FieldError(
                f"{where}.converge-min",
                durations.format_seconds(result.converge_min),
                f"at most {where}.converge-max ({durations.format_seconds(result.converge_max)})",
                "is above the convergence ceiling",
            )
        )
    if errors:
        raise PlanError(errors)
    return result
