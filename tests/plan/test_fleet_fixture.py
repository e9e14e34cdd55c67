"""The planner's exact output on a large random fleet is what was recorded.

Speed work on the planner (indexes, cached specs, cheaper ordering) must not change which
actions a plan holds, in which order, with which payloads, nor what it blocks, places,
numbers and shows.  `fleet.py` builds the fleet and explains how to record it again when a
change of the output is intended.
"""

from __future__ import annotations

import difflib

import pytest

from reconciler.plan.planner import plan

from .fleet import VARIANTS, lines, recorded, scenario


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_plan_of_the_random_fleet_is_the_recorded_one(variant: str) -> None:
    want = recorded(variant)
    got = lines(plan(*scenario(variant)))
    if got != want:
        diff = list(difflib.unified_diff(want, got, "recorded", "planned", lineterm="", n=0))
        pytest.fail(f"{len(diff)} diff lines, first ones:\n" + "\n".join(diff[:40]))


def test_the_fleet_exercises_most_of_the_planner() -> None:
    """The fixture is only worth something if the fleet is diverse: check it still is."""
    kinds = {line.split()[1].split(":")[0] for line in recorded("known") if line[0] == "A"}
    assert len(kinds) >= 14, kinds
    reasons = {line.split()[2] for line in recorded("host-down") if line[0] == "B"}
    assert {"DeferredWhileUnknown", "HostUnknown", "Unschedulable", "Detaching"} <= reasons
