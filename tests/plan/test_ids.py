"""Integer ids: reused from the resources, new ones above max(high-water mark, known ids)."""

from __future__ import annotations

from dataclasses import replace

from reconciler import identity
from reconciler.model import ReclaimPolicy
from reconciler.observe.types import IdLedger
from reconciler.plan.actions import ActionKind

from .builders import converge, desired, host, ohost, root_of, run, vm, volume, world

HOSTS = [host("h1", 1)]


def test_new_ids_start_at_one_in_name_order() -> None:
    d = desired(HOSTS, [vm("b"), vm("a")], [volume("y"), volume("x")])
    p = run(d, world(ohost("h1")))
    assert p.ids == {"vm/a": 1, "vm/b": 2, "volume/x": 1, "volume/y": 2}
    define = next(a for a in p.actions if a.id == "define-domain:vm/b")
    assert define.domain is not None
    assert define.domain.vmid == 2
    create = next(a for a in p.actions if a.id == "create-volume:volume/y")
    assert dict(create.meta)[identity.META_ID] == "2"


def test_existing_ids_are_reused_and_new_ones_follow_the_maximum() -> None:
    w = converge(desired(HOSTS, [vm("m"), vm("z")], [volume("v")]), world(ohost("h1")))
    # m=1, z=2 now live on the resources; a new "a" sorts first but gets 3
    p = run(desired(HOSTS, [vm("a"), vm("m"), vm("z")], [volume("a"), volume("v")]), w)
    assert p.ids == {"vm/a": 3, "vm/m": 1, "vm/z": 2, "volume/a": 2, "volume/v": 1}


def test_id_of_a_vm_whose_domain_is_gone_comes_from_its_root_disk() -> None:
    w = converge(desired(HOSTS, [vm("a"), vm("b")]), world(ohost("h1")))
    h = w.hosts["h1"]
    w = replace(w, hosts={"h1": replace(h, domains=tuple(d for d in h.domains if d.name != "b"))})
    p = run(desired(HOSTS, [vm("a"), vm("b")]), w)
    assert p.ids["vm/b"] == 2
    define = next(a for a in p.actions if a.kind == ActionKind.DEFINE_DOMAIN)
    assert define.domain is not None
    assert define.domain.vmid == 2


def test_ids_of_resources_that_left_the_spec_are_not_reused() -> None:
    w = converge(desired(HOSTS, [vm("a"), vm("b")], [volume("v")]), world(ohost("h1")))
    p = run(desired(HOSTS, [vm("a"), vm("c")], [volume("w")]), w)
    assert p.ids["vm/c"] == 3
    assert p.ids["volume/w"] == 2


def test_the_highest_id_is_not_reused_after_its_resource_is_deleted() -> None:
    gone = volume("y", policy=ReclaimPolicy.DELETE)
    w = converge(desired(HOSTS, [vm("a"), vm("b")], [volume("x"), gone]), world(ohost("h1")))
    assert (w.storage.ids.vm, w.storage.ids.volume) == (2, 2)  # advanced as they were created
    w = converge(desired(HOSTS, [vm("a")], [volume("x")]), w)  # b and y (highest ids) deleted
    assert root_of(w, "b") is None
    assert not [i for i in w.storage.images.values() if i.meta.get(identity.META_ID) == "2"]
    p = run(desired(HOSTS, [vm("a"), vm("c")], [volume("x"), volume("z")]), w)
    assert p.ids["vm/c"] == 3  # max(known) + 1 would hand out b's 2 again
    assert p.ids["volume/z"] == 3


def test_a_world_without_a_ledger_keeps_its_ids_and_counts_from_them() -> None:
    """A deployment from before the ledger: nothing changes for existing resources."""
    w = converge(desired(HOSTS, [vm("m"), vm("z")], [volume("v")]), world(ohost("h1")))
    w = replace(w, storage=replace(w.storage, ids=IdLedger()))
    p = run(desired(HOSTS, [vm("a"), vm("m"), vm("z")], [volume("v")]), w)
    assert p.ids == {"vm/a": 3, "vm/m": 1, "vm/z": 2, "volume/v": 1}
    assert not [a for a in p.actions if a.resource in ("vm/m", "vm/z", "volume/v")]


def test_a_ledger_above_every_known_id_decides() -> None:
    w = world(ohost("h1"))
    w = replace(w, storage=replace(w.storage, ids=IdLedger(vm=41, volume=7)))
    p = run(desired(HOSTS, [vm("a")], [volume("v")]), w)
    assert p.ids == {"vm/a": 42, "volume/v": 8}
