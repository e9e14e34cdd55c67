"""The incremental planner always answers what `plan()` answers, pass after pass.

Random fleets (the Hypothesis worlds of test_properties) go through a sequence of passes the
way the controller meets them: the same inputs again, equal inputs rebuilt from scratch in
another mapping order, the world after the plan was applied, random changes to the spec and
to the world, Ceph call counts that differ, and back to an earlier world.  At every step the
incremental planner's plan must equal a from-scratch `plan()` of the same inputs.
"""

from __future__ import annotations

import copy
import gc
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model import DesiredState
from reconciler.observe.types import DomainState, ObservedWorld
from reconciler.plan.incremental import IncrementalPlanner
from reconciler.plan.planner import plan
from reconciler.plan.settings import PlanSettings

from .builders import SETTINGS, attach, desired, host, ohost, vm, volume, world
from .sim import SimError, apply
from .worlds import Scenario, scenarios

PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _shuffled(w: ObservedWorld, rnd: object) -> ObservedWorld:
    """An equal world made of fresh objects, its mappings in another order."""
    w = copy.deepcopy(w)
    hosts = list(w.hosts.items())
    imgs = list(w.storage.images.items())
    rnd.shuffle(hosts)  # type: ignore[attr-defined]
    rnd.shuffle(imgs)  # type: ignore[attr-defined]
    return ObservedWorld(dict(hosts), replace(w.storage, images=dict(imgs)))


def _changed_spec(d: DesiredState, data: st.DataObject) -> DesiredState:
    if not d.vms:
        return replace(d, revision="other")
    name = data.draw(st.sampled_from(sorted(d.vms)))
    vms = dict(d.vms)
    if data.draw(st.booleans()):
        del vms[name]
    else:
        vms[name] = replace(vms[name], running=not vms[name].running)
    return replace(d, vms=vms)


def _drifted(w: ObservedWorld, data: st.DataObject) -> ObservedWorld:
    """One of our domains stopped behind volctl's back (or the world as it is)."""
    ours = [(n, d) for n, h in w.hosts.items() for d in h.domains if d.mark is not None]
    if not ours:
        return w
    host, dom = data.draw(st.sampled_from(ours))
    stopped = replace(dom, state=DomainState.SHUTOFF)
    h = w.hosts[host]
    doms = tuple(stopped if d is dom else d for d in h.domains)
    return replace(w, hosts={**w.hosts, host: replace(h, domains=doms)})


@PROFILE
@given(scenarios(), st.randoms(use_true_random=False), st.data())
def test_incremental_plans_equal_plans_from_scratch(
    s: Scenario, rnd: object, data: st.DataObject
) -> None:
    inc = IncrementalPlanner()

    def check(d: DesiredState, w: ObservedWorld, cfg: PlanSettings = s.settings) -> None:
        assert inc(d, w, cfg) == plan(d, w, cfg)

    check(s.desired, s.observed)
    check(s.desired, s.observed)  # the same objects: answered from the memo
    check(copy.deepcopy(s.desired), _shuffled(s.observed, rnd))  # equal, rebuilt
    counted = replace(s.observed.storage, calls={"stat": 2, "read": 7})
    check(s.desired, replace(s.observed, storage=counted))  # only the call counts differ
    assert inc.hits == 3
    assert inc.misses == 1
    try:
        after = apply(s.observed, plan(s.desired, s.observed, s.settings))
    except SimError:  # pragma: no cover - test_properties proves plans apply
        after = s.observed
    check(s.desired, after)
    check(s.desired, after)
    check(_changed_spec(s.desired, data), after)
    check(_changed_spec(s.desired, data), _drifted(after, data))
    flipped = replace(s.settings, allow_mass_delete=not s.settings.allow_mass_delete)
    check(s.desired, s.observed, flipped)
    check(s.desired, s.observed)  # back to the first pass's inputs


@PROFILE
@given(scenarios())
def test_a_returned_plan_cannot_change_a_later_one(s: Scenario) -> None:
    inc = IncrementalPlanner()
    first = inc(s.desired, s.observed, s.settings)
    first.placements["vm/intruder"] = "nowhere"
    first.ids["vm/intruder"] = 1
    assert inc(s.desired, s.observed, s.settings) == plan(s.desired, s.observed, s.settings)


@pytest.mark.parametrize("enabled", [True, False])
def test_planning_leaves_the_collector_as_it_found_it(enabled: bool) -> None:
    d = desired([host("h1", 1)], [vm("a")], [volume("v")], [attach("v-a", "v", "a")])
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        assert plan(d, world(ohost("h1")), SETTINGS).actions
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
