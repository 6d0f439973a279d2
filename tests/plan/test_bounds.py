"""A hostile annotation cannot make the plan's errors grow with it (issue 17)."""

from __future__ import annotations

import pytest

from quiesce import annotations as keys
from quiesce import plan as plans
from quiesce.plan import model
from tests.plan import hostile

# Every error a caller prints: what str(PlanError) gives, bounded whatever the input.
_MESSAGE_LIMIT = model.MAX_MESSAGE_CHARS
_ENTRY_LIMIT = model.MAX_ERRORS + 2 * model.MAX_ERRORS  # kept, plus one "more" per key at most


@pytest.mark.parametrize("which", ["containers", "consul", "ports", "unknown", "all"])
def test_the_worst_annotation_under_the_api_limit_gives_a_bounded_error(which: str) -> None:
    annotations = hostile.worst(which)
    with pytest.raises(plans.PlanError) as caught:
        plans.build_plan(annotations, hostile.POD_SPEC)
    errors = caught.value.errors
    assert len(errors) <= _ENTRY_LIMIT
    assert len(str(caught.value)) <= _MESSAGE_LIMIT
    for error in errors:
        assert len(error.value) <= model.MAX_VALUE_CHARS
        assert len(str(error)) <= 3 * model.MAX_TEXT_CHARS + 2 * model.MAX_VALUE_CHARS


def test_a_list_longer_than_the_cap_is_one_error_naming_the_cap() -> None:
    names = ",".join(f"c{i}" for i in range(model.MAX_LIST_ITEMS + 1))
    with pytest.raises(plans.PlanError) as caught:
        plans.build_plan({keys.INJECT: "true", keys.CONTAINERS: names}, hostile.POD_SPEC)
    (error,) = caught.value.errors
    assert error.problem == f"lists {model.MAX_LIST_ITEMS + 1} items"
    assert error.expected == f"at most {model.MAX_LIST_ITEMS} comma-separated items"
    assert error.length == len(names)
    assert f"({len(names)} characters)" in str(error)


def test_each_key_lists_a_few_errors_then_and_k_more() -> None:
    names = ",".join(f"nope{i}" for i in range(model.MAX_LIST_ITEMS))
    with pytest.raises(plans.PlanError) as caught:
        plans.build_plan({keys.INJECT: "true", keys.CONTAINERS: names}, hostile.POD_SPEC)
    errors = caught.value.errors
    assert len(errors) == model.MAX_ERRORS_PER_KEY + 1
    more = errors[-1]
    assert isinstance(more, model.MoreErrors)
    assert more.count == model.MAX_LIST_ITEMS - model.MAX_ERRORS_PER_KEY
    assert str(more) == (
        f"{keys.CONTAINERS}: and {more.count} more errors (only the first are listed)"
    )


def test_an_echoed_value_is_cut_with_an_ellipsis_and_its_length() -> None:
    error = model.FieldError("k", "x" * 10_000, "y", "is bad")
    assert error.value == "x" * (model.MAX_VALUE_CHARS - 1) + "…"
    assert error.length == 10_000
    assert str(error).startswith('k: "' + "x" * 20)
    assert '…" (10000 characters) is bad; expected y' in str(error)


def test_a_short_value_is_echoed_whole() -> None:
    error = model.FieldError("k", "10", "y", "is bad")
    assert (error.value, error.length) == ("10", None)


@pytest.mark.parametrize("limit", [1, 8, 40, 120, 1024, 4096])
def test_render_errors_fits_any_limit_and_counts_what_it_leaves_out(limit: int) -> None:
    annotations = hostile.worst("all")
    with pytest.raises(plans.PlanError) as caught:
        plans.build_plan(annotations, hostile.POD_SPEC)
    message = model.render_errors(caught.value.errors, limit)
    assert 0 < len(message) <= limit


def test_render_errors_says_how_many_it_left_out() -> None:
    errors = [model.FieldError(f"k{i}", "v" * 50, "e", "is bad") for i in range(10)]
    message = model.render_errors(errors, 200)
    assert message.endswith("more)")
    shown = message.count("is bad")
    assert f"(and {10 - shown} more)" in message


def test_render_errors_keeps_everything_that_fits() -> None:
    errors = [model.FieldError("a", "1", "x", "is bad"), model.FieldError("b", "2", "y", "is bad")]
    assert model.render_errors(errors, 1000) == (
        'a: "1" is bad; expected x; b: "2" is bad; expected y'
    )


def test_show_of_an_alias_bomb_is_bounded() -> None:
    bomb: list[object] = ["lol"]
    for _ in range(40):
        bomb = [bomb] * 10  # 10**40 leaves, a few hundred objects
    text = model.show(bomb)
    assert len(text) <= model.MAX_VALUE_CHARS + 1
