"""The cluster-wide plan defaults, read from the configuration's ``plan:`` mapping.

The operator's configuration file sets defaults for every workload under
``plan:``, with the annotations' short keys (``converge-max: 30s``); this module
reads that mapping into a :class:`model.PlanDefaults` with the same field
readers as the annotations, and every error at once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Final

from quiesce import durations
from quiesce.plan import fields, model
from quiesce.plan.model import FieldError, PlanDefaults, PlanError

DEFAULTS_KEYS: Final = (
    "deregister-timeout",
    "converge-min",
    "converge-max",
    "quiet-window",
    "hook-timeout",
    "drain-timeout",
    "margin",
    "port",
    "sidecar-mode",
    "auto-upgrade",
    "quiet-epsilon",
)


def parse_defaults(mapping: Mapping[str, Any], *, where: str = "plan") -> PlanDefaults:
    """Cluster-wide defaults from the configuration's ``plan:`` mapping (annotation short keys).

    YAML scalars are accepted as written (``port: 7979``, ``auto-upgrade: false``);
    errors name ``<where>.<key>``.
    """
    errors: list[FieldError] = []
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
    base = PlanDefaults()
    chosen: dict[str, Any] = {}
    for raw_key, raw in mapping.items():
        name = f"{where}.{raw_key}"
        if raw_key not in DEFAULTS_KEYS:
            errors.append(fields.unknown_key(name, raw, str(raw_key), DEFAULTS_KEYS, f"{where}."))
            continue
        text = fields.scalar_text(raw)
        if text is None:
            errors.append(FieldError(name, model.show(raw), "a string", "is not a scalar"))
            continue
        field = str(raw_key).replace("-", "_")
        if raw_key in ("port",):
            port = fields.port(name, text, errors)
            if port is not None:
                chosen[field] = port
        elif raw_key == "sidecar-mode":
            if text in model.SIDECAR_MODES:
                chosen[field] = text
            else:
                errors.append(
                    FieldError(name, text, " or ".join(model.SIDECAR_MODES), "is not a mode")
                )
        elif raw_key == "auto-upgrade":
            flag = fields.boolean(name, text, errors)
            if flag is not None:
                chosen[field] = flag
        elif raw_key == "quiet-epsilon":
            try:
                epsilon = float(text)
            except ValueError:
                epsilon = math.nan
            if 0 < epsilon < 1:
                chosen["epsilon"] = epsilon
            else:
                errors.append(
                    FieldError(name, text, "a probability such as 0.001", "is not between 0 and 1")
                )
        else:
            if raw_key == "hook-timeout":
                field = "hook_timeout"
            ns = fields.duration(name, text, errors)
            if ns is not None:
                chosen[field] = durations.to_seconds(ns)
    result = dataclasses.replace(base, **chosen)
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
