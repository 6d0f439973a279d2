"""The budget arithmetic: nanoseconds in, each phase's budget and the grace out.

Pure functions of integers (nanoseconds, so the identity holds exactly, with no
float rounding) that return values, notes for humans and errors naming the
annotation to change; :mod:`quiesce.plan.build` reads the inputs and turns
the result into a :class:`model.ShutdownPlan`::

    grace = deregister + converge_max + kept hook + drain + margin

``annotations`` are the workload's own: whether a key is present decides which
bound a contradiction blames, and whether the ceiling may shrink to fit a grace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from quiesce import annotations as keys
from quiesce import durations
from quiesce.plan.model import FieldError


@dataclasses.dataclass(frozen=True)
class Converge:
    """The convergence floor and ceiling in nanoseconds; meaningful when ``errors`` is empty."""

    floor: int
    ceiling: int
    notes: tuple[str, ...] = ()
    errors: tuple[FieldError, ...] = ()


@dataclasses.dataclass(frozen=True)
class Budget:
    """The ceiling and margin that make the identity hold; meaningful when ``errors`` is empty."""

    converge_max: int
    margin: int
    grace_seconds: int
    grace_source: str
    notes: tuple[str, ...] = ()
    errors: tuple[FieldError, ...] = ()


def converge(
    *, cmin: int, cmax: int, quiet: int, sleep_ns: int, annotations: Mapping[str, Any]
) -> Converge:
    """The convergence floor and ceiling, with an old preStop sleep folded into the floor."""
    errors: list[FieldError] = []
    notes: list[str] = []
    if cmin > cmax:
        blame = keys.CONVERGE_MIN if keys.CONVERGE_MIN in annotations else keys.CONVERGE_MAX
        errors.append(
            FieldError(
                blame,
                _shown(annotations, blame, cmin if blame == keys.CONVERGE_MIN else cmax),
                f"{keys.CONVERGE_MIN} <= "
                f"{keys.CONVERGE_MAX} ({durations.format(cmin)} > "
                f"{durations.format(cmax)})",
                "contradicts the other bound",
            )
        )
    if quiet > cmax:
        blame = keys.QUIET_WINDOW if keys.QUIET_WINDOW in annotations else keys.CONVERGE_MAX
        errors.append(
            FieldError(
                blame,
                _shown(annotations, blame, quiet if blame == keys.QUIET_WINDOW else cmax),
                f"{keys.QUIET_WINDOW} <= "
                f"{keys.CONVERGE_MAX} ({durations.format(quiet)} > "
                f"{durations.format(cmax)}): quiet can never be observed",
                "contradicts the other bound",
            )
        )
    if sleep_ns > cmin:
        cmin = sleep_ns
        if sleep_ns > cmax:
            if keys.CONVERGE_MAX in annotations:
                errors.append(
                    FieldError(
                        keys.CONVERGE_MAX,
                        annotations[keys.CONVERGE_MAX],
                        f"at least {durations.format(sleep_ns)}, the "
                        "existing preStop sleep that quiesce folds into the convergence floor",
                        "is shorter than the existing preStop sleep",
                    )
                )
            else:
                notes.append(
                    f"{keys.CONVERGE_MAX} raised to {durations.format(sleep_ns)}"
                    ", the existing preStop sleep"
                )
                cmax = sleep_ns
    return Converge(cmin, cmax, tuple(notes), tuple(errors))


def fit(
    *,
    dereg: int,
    cmin: int,
    cmax: int,
    quiet: int,
    hook: int,
    drain: int,
    margin: int,
    grace: int | None,
    template_grace: int | None,
    default_converge_max: int,
    annotations: Mapping[str, Any],
) -> Budget:
    """The budget for a grace fixed by the annotation, or the grace derived from the phases.

    ``grace`` and ``template_grace`` are whole seconds; every other duration is nanoseconds.
    """
    if grace is not None:
        return _fit_grace(
            dereg=dereg,
            cmin=cmin,
            cmax=cmax,
            quiet=quiet,
            hook=hook,
            drain=drain,
            margin=margin,
            grace=grace,
            template_grace=template_grace,
            default_converge_max=default_converge_max,
            annotations=annotations,
        )
    return _derive(
        fixed=dereg + hook + drain + margin, cmax=cmax, margin=margin, template_grace=template_grace
    )


def _fit_grace(
    *,
    dereg: int,
    cmin: int,
    cmax: int,
    quiet: int,
    hook: int,
    drain: int,
    margin: int,
    grace: int,
    template_grace: int | None,
    default_converge_max: int,
    annotations: Mapping[str, Any],
) -> Budget:
    """A grace the annotation fixes: shrink an unchosen ceiling, give the rest to the margin."""
    fmt = durations.format
    notes: list[str] = []
    fixed = dereg + hook + drain + margin
    total_ns = grace * durations.SECOND
    need = fixed + cmax
    least = need
    if keys.CONVERGE_MAX not in annotations and cmax <= default_converge_max:
        # converge-max was not chosen: the ceiling may shrink to what the grace leaves,
        # never below the floor or the quiet window.
        least = fixed + max(cmin, quiet)
        if need > total_ns >= least:
            cmax = total_ns - fixed
            need = total_ns
            notes.append(f"{keys.CONVERGE_MAX} is {fmt(cmax)}: what the {grace}s grace leaves")
    if need > total_ns:
        parts = [
            ("deregister", dereg),
            ("converge", cmax),
            ("app hook", hook),
            ("drain", drain),
            ("margin", margin),
        ]
        shown = " + ".join(
            f"{fmt(v)} {n}" for n, v in parts if v and (n != "converge" or least == need)
        )
        if least != need:
            shown += f" + converge of at least {fmt(least - fixed)}"
        error = FieldError(
            keys.GRACE_PERIOD,
            annotations[keys.GRACE_PERIOD],
            f"at least {_ceil_seconds(least)}s ({shown}), or shorter phases",
            "cannot fit the phases",
        )
        return Budget(cmax, margin, grace, "annotation", tuple(notes), (error,))
    if total_ns > need:
        notes.append(f"{fmt(total_ns - need)} of the {grace}s grace left over go to the margin")
    margin += total_ns - need
    if template_grace is not None and template_grace != grace:
        notes.append(
            f"terminationGracePeriodSeconds {template_grace} is replaced by "
            f"{keys.GRACE_PERIOD} ({grace}s)"
        )
    return Budget(cmax, margin, grace, "annotation", tuple(notes))


def _derive(*, fixed: int, cmax: int, margin: int, template_grace: int | None) -> Budget:
    """The grace the phases need, in whole seconds; a longer template grace is kept."""
    second = durations.SECOND
    notes: list[str] = []
    need = fixed + cmax
    # Rounding up to whole seconds (at least 1: 0 means "kill now") goes to the margin.
    seconds = max(1, _ceil_seconds(need))
    margin += seconds * second - need
    source = "derived"
    if template_grace is not None and template_grace > seconds:
        notes.append(
            f"the template's terminationGracePeriodSeconds {template_grace} is "
            f"kept (the plan needs {seconds}); the extra "
            f"{template_grace - seconds}s go to the margin"
        )
        margin += (template_grace - seconds) * second
        seconds = template_grace
        source = "template"
    elif template_grace is not None and template_grace < seconds:
        notes.append(f"terminationGracePeriodSeconds raised from {template_grace} to {seconds}")
    return Budget(cmax, margin, seconds, source, tuple(notes))


def probe_grace_notes(probe_grace: int | None, grace: int) -> list[str]:
    """Say when a probe's own grace, not the plan's, bounds a kill by that probe."""
    if probe_grace is None or probe_grace >= grace:
        return []
    return [
        f"a liveness or startup probe's terminationGracePeriodSeconds {probe_grace} is "
        f"shorter than the grace {grace}: a kill by that probe leaves the sequence "
        f"{probe_grace} s"
    ]


def _shown(annotations: Mapping[str, Any], key: str, ns: int) -> str:
    """The annotation as written, or the default that was used."""
    value = annotations.get(key)
    return value if isinstance(value, str) else durations.format(ns) + " (default)"


def _ceil_seconds(ns: int) -> int:
    return -(-ns // durations.SECOND)
