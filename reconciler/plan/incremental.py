"""`IncrementalPlanner`: the controller's planner, which does not plan twice for the same world.

A converged fleet is the controller's steady state: pass after pass, the desired state is
the same object (the source's last good revision) and the observed world is equal to the
last one (the libvirt and RBD observers serve unchanged domains and images from their
caches).  `plan()` is a pure function, so for equal inputs its answer is the one it gave
last time; re-deriving it costs ~0.2-0.3 s of CPU at 10k resources and ~2 s at 50k, while
checking that the inputs are unchanged costs one equality walk over them (a few
milliseconds at 10k: the desired state is usually the very same object, and the tuple and
dict comparisons under dataclass equality skip objects the two worlds share).

Why the answer is provably the same: the key is the *whole* input (desired state, observed
world, settings), compared with `==` on frozen values; the planner reads nothing else (no
clock, no I/O, no randomness) and ignores mapping order (tests/plan/test_properties.py
checks that), so equal inputs give an equal plan.  The one field left out of the key is
`ObservedStorage.calls` (the Ceph call counts of the observation, for logs and benchmarks;
the planner never reads it, and its dataclass does not compare it), which differs from pass
to pass.  Any other difference, however
small, plans from scratch.  tests/plan/test_incremental.py checks, over random fleets and
random changes between passes, that this planner and `plan()` always agree.

The inputs are values: frozen dataclasses whose mappings nobody edits after they are built
(the observers build fresh dicts every pass, the source a new `DesiredState` per revision);
a caller that edited a mapping of a world it had already planned, in place, would defeat
the comparison.  The memo holds one entry (the last plan), so memory stays one plan's
worth.  A plan is returned with fresh copies of its two dicts, so a caller that edits them
cannot change what a later pass gets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import Plan
from reconciler.plan.planner import plan
from reconciler.plan.settings import PlanSettings


@dataclass(frozen=True)
class _Entry:
    desired: DesiredState
    observed: ObservedWorld
    settings: PlanSettings
    plan: Plan


class IncrementalPlanner:
    """A `Planner` (callable like `plan`) that reuses the last plan when nothing changed."""

    def __init__(self) -> None:
        self._last: _Entry | None = None  # replaced whole (one assignment), never edited
        self.hits = 0  # plans answered from the memo (for logs, tests and benchmarks)
        self.misses = 0

    def __call__(
        self, desired: DesiredState, observed: ObservedWorld, settings: PlanSettings
    ) -> Plan:
        last = self._last
        if last is not None and _same(last, desired, observed, settings):
            self.hits += 1
            return _copy(last.plan)
        result = plan(desired, observed, settings)
        self.misses += 1
        self._last = _Entry(desired, observed, settings, result)
        return _copy(result)

    def forget(self) -> None:
        """Drop the memo (the next call plans from scratch)."""
        self._last = None


def _same(
    last: _Entry, desired: DesiredState, observed: ObservedWorld, settings: PlanSettings
) -> bool:
    # ObservedStorage.calls is not compared (`compare=False`): the planner never reads it
    return (
        (settings is last.settings or settings == last.settings)
        and (desired is last.desired or desired == last.desired)
        and (observed is last.observed or observed == last.observed)
    )


def _copy(p: Plan) -> Plan:
    return replace(p, placements=dict(p.placements), ids=dict(p.ids))
