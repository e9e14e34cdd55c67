"""One duration parser for `apply --timeout` and the config's `git.interval`."""

from __future__ import annotations

import pytest

from reconciler.durations import seconds
from reconciler.errors import SpecError


@pytest.mark.parametrize(
    ("value", "expected"),
    [(90, 90.0), (2.5, 2.5), ("90", 90.0), ("90s", 90.0), (" 5M ", 300.0), ("1.5h", 5400.0)],
)
def test_accepted_forms(value: object, expected: float) -> None:
    assert seconds(value, "--timeout") == expected


@pytest.mark.parametrize("value", ["", "s", "5 minutes", "-1s", "nan", "inf", True, None])
def test_anything_else_names_where_it_came_from(value: object) -> None:
    with pytest.raises(SpecError, match=r"^git interval .* is not a duration"):
        seconds(value, "git interval")
