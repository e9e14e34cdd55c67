"""Safety: the delete guard, split-brain (unknown hosts), unreachable Ceph, foreign things."""

from __future__ import annotations

from reconciler.model import ReclaimPolicy
from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import ActionKind
from reconciler.plan.render import image_of
from reconciler.plan.settings import PlanSettings

from .builders import (
    CEPH,
    attach,
    converge,
    desired,
    foreign,
    foreign_image,
    host,
    kinds,
    ohost,
    reasons,
    run,
    vm,
    volume,
    world,
)
from .sim import apply, domain_of, reachable_again, unreachable

K = ActionKind
DELETES = {K.DESTROY_DOMAIN, K.DELETE_ROOT, K.DELETE_VOLUME}
HOSTS = [host("h1", 1), host("h2", 2)]
DELETE = ReclaimPolicy.DELETE
# a, c, e land on h1 and b, d on h2 (pins), so an unknown h2 hides b and d
VMS = [vm("a", host_="h1"), vm("b", host_="h2"), vm("c", host_="h1"), vm("d", host_="h2")]


def spec(vms: list | None = None):  # type: ignore[no-untyped-def,type-arg]
    return desired(
        HOSTS, VMS if vms is None else vms, [volume("v", policy=DELETE)], [attach("x", "v", "a")]
    )


def full() -> ObservedWorld:
    return converge(spec(), world(ohost("h1"), ohost("h2")))


def test_guard_holds_every_deletion_of_an_emptied_spec() -> None:
    w = full()
    p = run(desired(HOSTS), w)
    assert not any(a.kind in DELETES for a in p.actions)
    assert p.empty  # the detach of v from a belongs to a's deletion and is held too
    held = reasons(p)
    assert held == {f"vm/{n}": "DeleteGuard" for n in "abcd"} | {"volume/v": "DeleteGuard"}
    assert "allow_mass_delete" in p.blocked[0].message
    assert "5 of 5" in p.blocked[0].message


def test_guard_override_deletes_everything_in_order() -> None:
    w = full()
    settings = PlanSettings(CEPH, allow_mass_delete=True)
    p = run(desired(HOSTS), w, settings)
    assert not p.blocked
    w2 = apply(w, p)
    assert all(not h.domains for h in w2.hosts.values())
    assert not w2.storage.images.keys() - {"img-deb"}


def test_guard_allows_small_deletions_and_respects_the_ratio() -> None:
    w = full()
    one = run(desired(HOSTS, VMS[:3], [volume("v", policy=DELETE)], [attach("x", "v", "a")]), w)
    assert [a.id for a in one.actions] == ["destroy-domain:vm/d", "delete-root:vm/d"]
    two = desired(HOSTS, VMS[:2], [volume("v", policy=DELETE)], [attach("x", "v", "a")])
    assert {a.kind for a in run(two, w).actions} == {K.DESTROY_DOMAIN, K.DELETE_ROOT}  # 2/5
    strict = PlanSettings(CEPH, delete_guard_ratio=0.2)
    assert reasons(run(two, w, strict)) == {"vm/c": "DeleteGuard", "vm/d": "DeleteGuard"}


def test_unknown_host_nothing_deleted_and_nothing_duplicated() -> None:
    w = unreachable(full(), "h2")
    # b and d are invisible; c left the spec; a new VM "e" is wanted
    d = desired(HOSTS, [vm("a", host_="h1"), vm("b", host_="h2"), vm("d"), vm("e")])
    p = run(d, w)
    assert not any(a.kind in DELETES for a in p.actions)
    blocked = reasons(p)
    assert blocked["vm/b"] == "HostUnknown"  # pinned to the unknown host
    assert blocked["vm/d"] == "HostUnknown"  # its root disk exists: may run on h2
    assert blocked["vm/c"] == "DeferredWhileUnknown"  # deletion deferred
    assert blocked["volume/v"] == "DeferredWhileUnknown"
    # the brand-new VM may be created on a reachable host
    assert p.placements["vm/e"] == "h1"
    assert ("define-domain", "vm/e") in kinds(p)
    assert all(a.host in (None, "h1") for a in p.actions)
    # when h2 comes back, it converges without duplicates
    w2 = reachable_again(apply(w, p), full())
    w3 = converge(d, w2, passes=2)
    names = [dom.name for h in w3.hosts.values() for dom in h.domains]
    assert sorted(names) == ["a", "b", "d", "e"]


def test_unknown_host_blocks_replace() -> None:
    from .builders import image

    imgs = [image("deb"), image("alp", 2)]
    w = converge(desired(HOSTS, VMS, images=imgs), world(ohost("h1"), ohost("h2")))
    w = unreachable(w, "h2")
    p = run(desired(HOSTS, [vm("a", image_="alp", host_="h1")], images=imgs), w)
    assert not any(a.kind in DELETES for a in p.actions)
    assert reasons(p)["vm/a"] == "DeferredWhileUnknown"


def test_storage_unreachable_touches_no_ceph_and_deletes_nothing() -> None:
    w = full()
    w = ObservedWorld(w.hosts, world(storage_ok=False).storage)
    d = desired(HOSTS, [vm("a", host_="h1", running=False), vm("new")], [volume("v2")])
    p = run(d, w)
    assert kinds(p) == [("stop-domain", "vm/a")]  # libvirt-only and not destructive
    blocked = reasons(p)
    assert blocked["vm/new"] == "StorageUnknown"
    assert blocked["volume/v2"] == "StorageUnknown"
    assert blocked["vm/b"] == "DeferredWhileUnknown"
    apply(w, p)  # the simulator refuses any Ceph action here


def test_foreign_resources_are_never_in_any_action() -> None:
    w = world(
        ohost("h1", domains=[foreign("legacy", vcpus=2)]),
        ohost("h2", domains=[foreign("vm-x", vcpus=1)]),
        images=[foreign_image("vm-legacy-root"), foreign_image("vol-old"), foreign_image("x")],
    )
    p = run(desired(HOSTS, [vm("a")], [volume("w")]), w)
    for a in p.actions:
        assert image_of(a) not in {"vm-legacy-root", "vol-old", "x"}
        assert (domain := domain_of(a)) is None or domain.name not in {"legacy", "vm-x"}
    w2 = apply(w, p)
    assert {"vm-legacy-root", "vol-old", "x"} <= w2.storage.images.keys()
    assert run(desired(HOSTS), w2, PlanSettings(CEPH, allow_mass_delete=True)).actions
    w3 = converge(desired(HOSTS), w2, PlanSettings(CEPH, allow_mass_delete=True))
    assert {d.name for h in w3.hosts.values() for d in h.domains} == {"legacy", "vm-x"}
    assert {"vm-legacy-root", "vol-old", "x"} <= w3.storage.images.keys()


def test_root_disk_open_by_an_invisible_client_is_not_reused_or_deleted() -> None:
    from dataclasses import replace

    w = full()
    root = w.storage.images["vm-c-root"]
    images = {**w.storage.images, "vm-c-root": replace(root, watchers=("10.0.0.9:0/1",))}
    h1 = w.hosts["h1"]
    w = replace(
        w,
        hosts={**w.hosts, "h1": replace(h1, domains=tuple(d for d in h1.domains if d.name != "c"))},
        storage=replace(w.storage, images=images),
    )
    keep = run(spec(), w)
    assert keep.empty
    assert reasons(keep) == {"vm/c": "RootInUse"}
    gone = run(spec([v for v in VMS if v.meta.name != "c"]), w)
    assert not [a for a in gone.actions if a.resource == "vm/c"]
    assert reasons(gone)["vm/c"] == "RootInUse"


def test_volume_open_somewhere_unseen_is_not_attached_while_a_host_is_unknown() -> None:
    from dataclasses import replace

    d = desired(HOSTS, VMS, [volume("v")], [attach("x", "v", "b")])
    w = converge(d, world(ohost("h1"), ohost("h2")))
    img = w.storage.images["vol-v"]
    w = replace(
        w,
        storage=replace(
            w.storage, images={**w.storage.images, "vol-v": replace(img, watchers=("c1",))}
        ),
    )
    w = unreachable(w, "h2")
    p = run(desired(HOSTS, VMS, [volume("v")], [attach("x", "v", "a")]), w)
    assert reasons(p) == {
        "attachment/x": "HostUnknown",
        "vm/b": "HostUnknown",
        "vm/d": "HostUnknown",
    }
    assert p.empty
