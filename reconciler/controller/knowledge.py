"""Refuse to plan on partial knowledge: every host and the pool must have been observed.

The planner is safe with unknown hosts (it deletes nothing and creates nothing that may
exist there), but a *report* built on partial knowledge lies: with every host down,
`volctl plan` used to print "No changes" and exit 0, so a CI gate passed.  The one-shot
commands (`plan`, `reconcile --once`) therefore require complete knowledge and fail with
"cannot plan: ..." naming each unknown part.  The long-running controller keeps planning
what it safely can; its status already shows unknown hosts.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.errors import VolctlError
from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import Plan
from reconciler.plan.settings import PlanSettings

Planner = Callable[[DesiredState, ObservedWorld, PlanSettings], Plan]


class CannotPlan(VolctlError):
    """Part of the world the plan needs could not be observed."""

    def __init__(self, unknown: list[str]) -> None:
        self.unknown = tuple(unknown)
        super().__init__("cannot plan: " + "; ".join(unknown))


def unknowns(observed: ObservedWorld) -> list[str]:
    """One line per host or pool that was not observed, with the reason."""
    out = [
        f"host {h.name} is unknown: {h.reason or 'unreachable'}"
        for h in sorted(observed.hosts.values(), key=lambda h: h.name)
        if not h.reachable
    ]
    if not observed.storage.reachable:
        out.append(f"Ceph pool is unknown: {observed.storage.reason or 'unreachable'}")
    return out


def require_complete(observed: ObservedWorld) -> None:
    """Raise CannotPlan when any host or the pool is unknown."""
    missing = unknowns(observed)
    if missing:
        raise CannotPlan(missing)


class CompleteKnowledge:
    """A Planner that refuses (CannotPlan) to plan a world with an unknown host or pool,
    and remembers its last refusal for the command to report."""

    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self.refused: CannotPlan | None = None

    def __call__(self, desired: DesiredState, observed: ObservedWorld, s: PlanSettings) -> Plan:
        try:
            require_complete(observed)
        except CannotPlan as exc:
            self.refused = exc
            raise
        self.refused = None
        return self.planner(desired, observed, s)
