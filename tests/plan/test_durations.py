"""Go duration syntax: what users type in annotations must mean what Go tools mean."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quiesce import durations


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("0s", 0),
        ("500ms", 500_000_000),
        ("10s", 10_000_000_000),
        ("1m30s", 90_000_000_000),
        ("1.5s", 1_500_000_000),
        (".5s", 500_000_000),
        ("1.s", 1_000_000_000),
        ("1h", 3_600_000_000_000),
        ("1h2m3s4ms", 3_723_004_000_000),
        ("250ns", 250),
        ("3us", 3_000),
        ("3µs", 3_000),
        ("3μs", 3_000),
        ("-2s", -2_000_000_000),
        ("+2s", 2_000_000_000),
        ("2562047h47m16.854775807s", 2**63 - 1),
    ],
)
def test_parses_what_go_parses(text: str, nanoseconds: int) -> None:
    assert durations.parse(text) == nanoseconds


@pytest.mark.parametrize(
    "text",
    ["", "1", "20", "s", ".s", "10x", "1m5", "+", "-", "1 s", "1sm", "٣s", "9" * 30 + "s"],
)
def test_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(durations.DurationError):
        durations.parse(text)


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_100, "1.1µs"),
        (2_200_000, "2.2ms"),
        (500_000_000, "500ms"),
        (20_000_000_000, "20s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (-1_500_000_000, "-1.5s"),
    ],
)
def test_formats_like_go_duration_string(nanoseconds: int, text: str) -> None:
    assert durations.format(nanoseconds) == text


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_format_then_parse_gives_the_same_duration(nanoseconds: int) -> None:
    assert durations.parse(durations.format(nanoseconds)) == nanoseconds


@given(st.text(max_size=30))
def test_parse_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(durations.DurationError):
        durations.parse(text)


def test_huge_digit_strings_are_out_of_range_not_a_crash() -> None:
    with pytest.raises(durations.DurationError, match="out of range"):
        durations.parse("9" * 5000 + "s")


def test_one_nanosecond_past_int64_is_out_of_range_as_in_go() -> None:
    with pytest.raises(durations.DurationError, match="out of range"):
        durations.parse("2562047h47m16.854775808s")
