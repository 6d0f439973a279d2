"""Every parser entry point is total: any string gives a value or the documented error.

Hostile input found ``int()``'s 4,300-digit limit (a ValueError the callers never
caught) behind a duration of 5,000 leading zeros; these properties try long
digit runs, unicode digits, control characters, NUL and huge exponents.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quiesce import annotations as keys
from quiesce import durations, values
from quiesce import plan as plans
from quiesce.plan import codec, model
from tests.plan import hostile, specs

_PIECES = st.sampled_from(
    [
        "0",
        "1",
        "9",
        "٣",
        "߁",
        "²",
        ".",
        "-",
        "+",
        "e",
        "E",
        "s",
        "ms",
        "µs",
        "h",
        "m",
        "ns",
        "\x00",
        "\n",
        "\t",
        "\u202e",
        " ",
        ",",
        "inf",
        "nan",
        "_",
        "1e99999",
    ]
)
_DIGIT_RUNS = st.builds(
    lambda lead, n, tail: lead * n + tail,
    st.sampled_from(["0", "1", "٣", "9"]),
    st.integers(0, 6000),
    st.sampled_from(["", "1", "1s", ".5s", "s", "1h", "e9"]),
)
HOSTILE = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8")),
    st.lists(_PIECES, max_size=30).map("".join),
    _DIGIT_RUNS,
)
TOTAL = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def test_five_thousand_leading_zeros_are_a_duration() -> None:
    assert durations.parse("0" * 5000 + "1s") == durations.SECOND


def test_five_thousand_digits_are_out_of_range() -> None:
    with pytest.raises(durations.DurationError, match="out of range"):
        durations.parse("1" * 5000 + "s")


@TOTAL
@given(HOSTILE)
def test_durations_parse_gives_nanoseconds_or_a_duration_error(text: str) -> None:
    try:
        assert isinstance(durations.parse(text), int)
    except durations.DurationError as exc:
        assert len(str(exc)) < 200


@TOTAL
@given(HOSTILE)
@pytest.mark.parametrize("parse", [values.parse_bool, values.parse_port, values.parse_signal])
def test_value_grammars_give_a_value_or_a_value_error(parse: Any, text: str) -> None:
    with contextlib.suppress(ValueError):
        parse(text)


@TOTAL
@given(HOSTILE)
@pytest.mark.parametrize("key", plans.DEFAULTS_KEYS)
def test_every_defaults_key_gives_a_value_or_a_plan_error(key: str, text: str) -> None:
    try:
        plans.parse_defaults({key: text})
    except plans.PlanError as exc:
        assert len(str(exc)) <= model.MAX_MESSAGE_CHARS


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _plan_like() -> st.SearchStrategy[dict[str, Any]]:
    """A real plan's JSON with some fields replaced by arbitrary JSON."""
    real = json.loads(plans.build_plan({keys.INJECT: "true"}, specs.web()).to_json())
    return st.dictionaries(st.sampled_from(sorted(real)), _JSON).map(lambda d: {**real, **d})


@TOTAL
@given(
    st.one_of(
        HOSTILE,
        _JSON.map(json.dumps),
        _plan_like().map(json.dumps),
        st.integers(1, 100_000).map(lambda n: "[" * n),
        st.integers(1, 5000).map(lambda n: '{"version": 1' + "9" * n + "}"),
        st.sampled_from(["1e99999", "-1e99999", "NaN", '{"port": ' + "9" * 4000 + "}"]),
    )
)
def test_codec_from_json_gives_a_plan_or_a_plan_format_error(text: str) -> None:
    try:
        codec.from_json(text)
    except model.PlanFormatError as exc:
        assert len(str(exc)) <= model.MAX_MESSAGE_CHARS


def test_a_plan_with_a_huge_integer_is_a_format_error() -> None:
    real = json.loads(plans.build_plan({keys.INJECT: "true"}, specs.web()).to_json())
    real["margin"] = 10**400
    with pytest.raises(model.PlanFormatError):
        codec.from_json(json.dumps(real))


_KEYS = st.one_of(
    st.sampled_from([keys.PREFIX + key for key in plans.USER_KEYS]),
    st.text(max_size=40).map(lambda s: keys.PREFIX + s),
    st.text(max_size=40),
)
_VALUES = st.one_of(HOSTILE, _JSON)


@TOTAL
@given(
    st.dictionaries(_KEYS, _VALUES, max_size=12), st.sampled_from([specs.web(), hostile.POD_SPEC])
)
def test_build_plan_gives_a_plan_or_a_bounded_plan_error(
    annotations: dict[str, Any], pod_spec: dict[str, Any]
) -> None:
    try:
        plan = plans.build_plan({keys.INJECT: "true", **annotations}, pod_spec)
    except plans.PlanError as exc:
        assert len(str(exc)) <= model.MAX_MESSAGE_CHARS
        assert len(exc.errors) <= 3 * model.MAX_ERRORS
        assert len(model.render_errors(exc.errors, 1024)) <= 1024
    else:
        assert plan.grace_period_seconds >= 1


def test_a_huge_template_grace_is_an_error_not_an_overflow() -> None:
    with pytest.raises(plans.PlanError, match="terminationGracePeriodSeconds"):
        plans.build_plan({keys.INJECT: "true"}, specs.web(terminationGracePeriodSeconds=10**400))


def test_a_long_lived_port_of_five_thousand_digits_is_an_error() -> None:
    with pytest.raises(plans.PlanError, match="names no port"):
        plans.build_plan(
            {keys.INJECT: "true", keys.LONG_LIVED_PORTS: "0" * 5000 + "1"}, specs.web()
        )
