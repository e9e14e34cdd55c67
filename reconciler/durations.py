"""Durations as people write them: 90, 2.5, "90s", "5m", "1h".

Why one module: the same words appear on the command line (`volctl apply --timeout`) and in
the config (`git.interval`); one parser means one set of accepted forms and one error message
that names where the bad value came from.
"""

from __future__ import annotations

import math

from reconciler.errors import SpecError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(value: object, what: str) -> float:
    """`value` in seconds: a number, or a number followed by s, m or h.

    Raises SpecError naming `what` (a flag or config key) for anything else, negative and
    non-finite values included.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip().lower()
        scale = _UNITS.get(text[-1:], 1.0)
        digits = text[:-1] if text[-1:] in _UNITS else text
        try:
            number = float(digits) * scale
        except ValueError:
            number = math.nan
    if not math.isfinite(number) or number < 0:
        raise SpecError(f"{what} {value!r} is not a duration (e.g. 30, 30s, 5m)")
    return number
