"""The sidecar's environment reader: quiesce's one boolean grammar, errors that name it all."""

from __future__ import annotations

import pytest

from quiesce import values
from quiesce.sidecar import settings

from .helpers import make_plan


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("true", True), ("T", True), ("yes", True), ("on", True), ("1", True)],
        *[("false", False), ("f", False), ("NO", False), ("off", False), ("0", False)],
    ],
)
def test_boolean_variables_read_the_one_grammar(raw: str, expected: bool) -> None:
    read = settings.from_env({"QUIESCE_CHECK_SOURCE": raw}, plan=make_plan())
    assert read.check_source is expected


def test_unset_or_empty_boolean_variables_keep_their_default() -> None:
    assert settings.from_env({}, plan=make_plan()).check_source is True
    assert settings.from_env({"QUIESCE_CHECK_SOURCE": ""}, plan=make_plan()).check_source is True


def test_a_bad_boolean_names_the_variable_the_value_and_the_grammar() -> None:
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_env({"CONSUL_HTTP_SSL_VERIFY": "disabled"}, plan=make_plan())
    assert (
        str(caught.value) == f"CONSUL_HTTP_SSL_VERIFY='disabled': expected {values.BOOL_EXPECTED}"
    )
