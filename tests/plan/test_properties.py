"""Hypothesis properties of plan() over random desired and observed worlds.

The simulator (`sim.apply`) is the referee for everything the world would refuse or volctl
must never do; these properties add convergence, determinism, ordering and the survival of
everything foreign.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import ActionKind, Plan
from reconciler.plan.planner import plan
from reconciler.plan.render import image_of

from .sim import apply, domain_of
from .worlds import Scenario, scenarios

K = ActionKind
DELETES = {K.DESTROY_DOMAIN, K.DELETE_ROOT, K.DELETE_VOLUME}
# VOLCTL_PLAN_EXAMPLES=2000 for a long hunt; the default keeps the file to a few seconds each
EXAMPLES = int(os.environ.get("VOLCTL_PLAN_EXAMPLES", "60"))
PROFILE = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _foreign(w: ObservedWorld) -> tuple[set[tuple[str, object]], dict[str, object]]:
    doms = {(n, d) for n, h in w.hosts.items() if h.reachable for d in h.domains if d.mark is None}
    imgs = {n: i for n, i in w.storage.images.items() if not i.ours}
    return doms, imgs  # type: ignore[return-value]


def _index(p: Plan) -> dict[str, int]:
    return {a.id: i for i, a in enumerate(p.actions)}


@PROFILE
@given(scenarios())
def test_plan_is_safe_to_apply_and_leaves_foreign_things_alone(s: Scenario) -> None:
    p = plan(s.desired, s.observed, s.settings)
    w2 = apply(s.observed, p)  # raises on any forbidden or impossible action
    doms, imgs = _foreign(s.observed)
    doms2, imgs2 = _foreign(w2)
    assert doms <= doms2
    assert imgs == imgs2
    foreign_names = {d.name for _, d in doms}  # type: ignore[attr-defined]
    for a in p.actions:
        assert image_of(a) not in imgs
        if (domain := domain_of(a)) is not None and a.host is not None:
            assert (a.host, domain.name) not in {(h, d.name) for h, d in doms}  # type: ignore[attr-defined]
    assert foreign_names is not None


@PROFILE
@given(scenarios())
def test_nothing_is_deleted_on_partial_knowledge(s: Scenario) -> None:
    p = plan(s.desired, s.observed, s.settings)
    if not s.observed.all_hosts_known or not s.observed.storage.reachable:
        assert not [a.id for a in p.actions if a.kind in DELETES]
    for a in p.actions:
        if a.host is not None:
            assert s.observed.hosts[a.host].reachable


@PROFILE
@given(scenarios())
def test_ordering_constraints_hold(s: Scenario) -> None:
    p = plan(s.desired, s.observed, s.settings)
    pos = _index(p)
    assert len(pos) == len(p.actions)  # ids are unique
    for a in p.actions:
        assert a.id.startswith(f"{a.kind.value}:{a.resource}")
        for dep in a.depends_on:
            assert pos[dep] < pos[a.id]
    detaches = [a for a in p.actions if a.kind == K.DETACH_VOLUME]
    for a in p.actions:
        if a.kind == K.ATTACH_VOLUME:
            assert a.disk is not None
            vol = a.disk.rbd_image.split("/vol-", 1)[1]
            create = f"create-volume:volume/{vol}"
            if create in pos:
                assert pos[create] < pos[a.id]
            vm_name = a.domain.name if a.domain else ""
            for kind in ("define-domain", "start-domain"):
                if f"{kind}:vm/{vm_name}" in pos:
                    assert pos[f"{kind}:vm/{vm_name}"] < pos[a.id]
            for d in detaches:
                assert d.disk is not None
                if d.disk.rbd_image == a.disk.rbd_image:
                    assert pos[d.id] < pos[a.id]
        if a.kind == K.DESTROY_DOMAIN:
            for d in detaches:
                if d.host == a.host and d.domain and a.domain and d.domain.name == a.domain.name:
                    assert pos[d.id] < pos[a.id]
        if a.kind == K.DELETE_VOLUME:
            for d in detaches:
                if d.disk and d.disk.rbd_image.endswith(f"/{a.image_name}"):
                    assert pos[d.id] < pos[a.id]


@PROFILE
@given(scenarios(unknown=False))
def test_applying_the_plan_converges(s: Scenario) -> None:
    p = plan(s.desired, s.observed, s.settings)
    w2 = apply(s.observed, p)
    p2 = plan(s.desired, w2, s.settings)
    if not p.blocked:
        assert p2.empty, [a.id for a in p2.actions]
        assert not p2.blocked
    # with blocked resources it still settles: a few passes and nothing is left to do
    w = w2
    for _ in range(4):
        nxt = plan(s.desired, w, s.settings)
        if nxt.empty:
            break
        w = apply(w, nxt)
    assert plan(s.desired, w, s.settings).empty


@PROFILE
@given(scenarios(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_and_ignores_dict_order(s: Scenario, rnd: object) -> None:
    p = plan(s.desired, s.observed, s.settings)
    assert p == plan(s.desired, s.observed, s.settings)
    hosts = list(s.observed.hosts.items())
    rnd.shuffle(hosts)  # type: ignore[attr-defined]
    imgs = list(s.observed.storage.images.items())
    rnd.shuffle(imgs)  # type: ignore[attr-defined]
    vms = list(s.desired.vms.items())
    rnd.shuffle(vms)  # type: ignore[attr-defined]
    shuffled = ObservedWorld(dict(hosts), replace(s.observed.storage, images=dict(imgs)))
    assert plan(replace(s.desired, vms=dict(vms)), shuffled, s.settings) == p


@PROFILE
@given(scenarios(unknown=False))
def test_new_placements_fit_and_respect_anti_affinity(s: Scenario) -> None:
    p = plan(s.desired, s.observed, s.settings)
    w2 = apply(s.observed, p)
    before = {(n, d.name) for n, h in s.observed.hosts.items() for d in h.domains}
    created = {
        (a.host, a.domain.name)
        for a in p.actions
        if a.kind == K.DEFINE_DOMAIN and a.domain and (a.host, a.domain.name) not in before
    }
    for host_name in {h for h, _ in created}:
        spec = s.desired.hosts[host_name]
        obs = w2.hosts[host_name]
        cap = spec.cpu_capacity if spec.cpu_capacity is not None else obs.cpus
        used = sum(d.vcpus for d in obs.domains if d.mark or d.state.value != "shutoff")
        assert used <= cap
    for host_name, name in created:
        group = s.desired.vms[name].anti_affinity_group
        if group is None:
            continue
        members = Counter(
            s.desired.vms[d.mark.name].anti_affinity_group
            for d in w2.hosts[host_name].domains
            if d.mark and d.mark.name in s.desired.vms
        )
        assert members[group] == 1


@PROFILE
@given(scenarios())
def test_a_detaching_disk_is_asked_again_and_its_volume_attached_nowhere(s: Scenario) -> None:
    """A live-only disk (an unplug request the guest may have lost) gets its detach planned
    again, unless its domain is destroyed by this plan; its volume is never attached in the
    same plan."""
    p = plan(s.desired, s.observed, s.settings)
    destroyed = {
        (a.host, a.domain.name) for a in p.actions if a.kind == K.DESTROY_DOMAIN and a.domain
    }
    detached = {
        (a.host, a.domain.name, a.disk.rbd_image)
        for a in p.actions
        if a.kind == K.DETACH_VOLUME and a.domain and a.disk
    }
    attached = {a.disk.rbd_image for a in p.actions if a.kind == K.ATTACH_VOLUME and a.disk}
    held = {b.resource for b in p.blocked}
    for name, h in s.observed.hosts.items():
        for d in h.domains if h.reachable else ():
            for disk in d.disks:
                if disk.persistent or d.mark is None or disk.rbd_image is None:
                    continue
                assert disk.rbd_image not in attached
                vol = disk.rbd_image.split("/vol-", 1)[-1]
                if (name, d.name) in destroyed or f"vm/{d.mark.name}" in held:
                    continue
                if f"volume/{vol}" in held and not s.observed.storage.reachable:
                    continue
                assert (name, d.name, disk.rbd_image) in detached, (name, d.name, disk)
