"""The incremental status computation always answers what `compute()` answers.

Real inputs: the recorded 1,200-VM fleet (tests/plan/fleet.py) in its three variants (work
planned, a host unknown, Ceph unknown: blocked and unknown resources, pending actions) and a
converged fleet, planned by the real planner.  A sequence of passes goes through the memo the
way the controller meets it: the same inputs again (answered from the memo), an equal world
rebuilt from fresh objects, a pass whose actions ran, the steady pass after it, a pass that
changed the world, a failed pass; at every step the snapshot must equal `compute()`'s.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from reconciler.execute.outcome import Outcome
from reconciler.plan.planner import plan
from reconciler.plan.results import Result
from reconciler.status.compute import PassInput, compute
from reconciler.status.incremental import IncrementalStatus
from reconciler.status.types import Snapshot
from tests.plan.fleet import VARIANTS, scenario
from tests.plan.sim import apply


def _pass(n: int, d: object, w: object, p: object, **kw: object) -> PassInput:
    return PassInput(f"r{n}", 1000.0 + n, 0.1, d, w, p, **kw)  # type: ignore[arg-type]


def _step(inc: IncrementalStatus, prev: Snapshot, p: PassInput) -> Snapshot:
    got = inc(prev, p)
    assert got == compute(prev, p)
    return got


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pass_equals_compute(variant: str) -> None:
    d, w, settings = scenario(variant)
    p = plan(d, w, settings)
    inc = IncrementalStatus()
    s = _step(inc, Snapshot(), _pass(1, d, w, p))
    s = _step(inc, s, _pass(2, d, w, p))
    assert inc.hits == 1  # the same inputs again: from the memo
    s = _step(inc, s, _pass(3, d, copy.deepcopy(w), plan(d, w, settings)))
    assert inc.hits == 2  # equal, not identical, inputs count as the same
    if p.actions:
        ran = {a.id: Outcome(a, Result.OK) for a in p.actions[:5]}
        s = _step(inc, s, _pass(4, d, w, p, outcomes=ran))
        s = _step(inc, s, _pass(5, d, w, p))  # after a pass that ran: computed again
        assert inc.hits == 2
        w2 = apply(w, p)
        p2 = plan(d, w2, settings)
        s = _step(inc, s, _pass(6, d, w2, p2))
        s = _step(inc, s, _pass(7, d, w2, p2))
        assert inc.hits == 3
    s = _step(inc, s, _pass(8, d, None, None, error="observe failed"))
    _step(inc, s, _pass(9, d, w, p))


def test_a_snapshot_someone_else_wrote_is_never_taken_for_ours() -> None:
    d, w, settings = scenario("host-down")
    p = plan(d, w, settings)
    inc = IncrementalStatus()
    s = inc(Snapshot(), _pass(1, d, w, p))
    edited = replace(s, last_error="published by someone else")
    got = inc(edited, _pass(2, d, w, p))
    assert got == compute(edited, _pass(2, d, w, p))
    assert inc.hits == 0
