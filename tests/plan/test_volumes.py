"""Volumes and attachments: create, grow, shrink refused, policy, moves, detaching, deletion."""

from __future__ import annotations

from dataclasses import replace

from reconciler import identity
from reconciler.model import ReclaimPolicy
from reconciler.observe.types import ObservedDisk, ObservedImage, ObservedWorld
from reconciler.plan.actions import ActionKind
from reconciler.plan.render import image_of

from .builders import (
    GIB,
    SETTINGS,
    attach,
    converge,
    desired,
    domain_of,
    foreign,
    host,
    kinds,
    ohost,
    reasons,
    run,
    vm,
    volume,
    world,
)
from .sim import apply

K = ActionKind
HOSTS = [host("h1", 1), host("h2", 2)]
DELETE = ReclaimPolicy.DELETE


def base(*vols: str) -> ObservedWorld:
    d = desired(HOSTS, [vm("a"), vm("b"), vm("c")], [volume(v) for v in vols])
    return converge(d, world(ohost("h1"), ohost("h2")))


def _disks(w: ObservedWorld, dom: str) -> list[tuple[str, str | None]]:
    found = domain_of(w, dom)
    assert found is not None
    return [(d.target, d.rbd_image) for d in found[1].disks]


def _set_disks(w: ObservedWorld, dom: str, disks: tuple[ObservedDisk, ...]) -> ObservedWorld:
    hosts = {
        n: replace(
            h, domains=tuple(replace(d, disks=disks) if d.name == dom else d for d in h.domains)
        )
        for n, h in w.hosts.items()
    }
    return replace(w, hosts=hosts)


VMS = [vm("a"), vm("b"), vm("c")]


def test_create_and_attach_with_serial_and_first_free_target() -> None:
    d = desired(
        HOSTS, VMS, [volume("v1"), volume("v2")], [attach("x1", "v1", "a"), attach("x2", "v2", "a")]
    )
    w = base()
    p = run(d, w)
    att = [a for a in p.actions if a.kind == K.ATTACH_VOLUME]
    assert [(a.resource, a.disk.target if a.disk else None) for a in att] == [
        ("attachment/x1", "vdb"),
        ("attachment/x2", "vdc"),
    ]
    assert att[0].disk is not None
    assert att[0].disk.serial == f"vol-{p.ids['volume/v1']}"
    assert att[0].depends_on == ("create-volume:volume/v1",)
    w2 = apply(w, p)
    assert _disks(w2, "a") == [
        ("vda", "rbd/vm-a-root"),
        ("vdb", "rbd/vol-v1"),
        ("vdc", "rbd/vol-v2"),
    ]
    assert run(d, w2).empty


def test_attach_to_a_new_vm_waits_for_define_and_start() -> None:
    d = desired(HOSTS, [vm("n")], [volume("v")], [attach("x", "v", "n")])
    p = run(d, world(ohost("h1"), ohost("h2")))
    att = next(a for a in p.actions if a.kind == K.ATTACH_VOLUME)
    assert set(att.depends_on) == {
        "create-volume:volume/v",
        "define-domain:vm/n",
        "start-domain:vm/n",
    }


def test_grow_is_online_when_attached_to_a_running_vm() -> None:
    d = desired(HOSTS, VMS, [volume("v", 5)], [attach("x", "v", "a")])
    w = converge(d, base())
    d2 = desired(HOSTS, VMS, [volume("v", 8)], [attach("x", "v", "a")])
    p = run(d2, w)
    assert kinds(p) == [("resize-volume", "volume/v")]
    grow = p.actions[0]
    assert (grow.size_bytes, grow.host) == (8 * GIB, "h1")
    assert grow.domain is not None
    assert grow.domain.name == "a"
    w2 = apply(w, p)
    assert w2.storage.images["vol-v"].size_bytes == 8 * GIB
    assert run(d2, w2).empty


def test_shrink_is_refused_and_nothing_is_done() -> None:
    w = converge(desired(HOSTS, VMS, [volume("v", 8)]), base())
    p = run(desired(HOSTS, VMS, [volume("v", 5)]), w)
    assert p.empty
    assert reasons(p) == {"volume/v": "ShrinkRefused"}
    assert "8 GiB" in p.blocked[0].message


def test_reclaim_policy_change_updates_image_meta() -> None:
    w = converge(desired(HOSTS, VMS, [volume("v")]), base())
    d2 = desired(HOSTS, VMS, [volume("v", policy=DELETE)])
    p = run(d2, w)
    assert kinds(p) == [("set-volume-meta", "volume/v")]
    w2 = apply(w, p)
    assert w2.storage.images["vol-v"].meta[identity.META_RECLAIM] == "Delete"
    assert run(d2, w2).empty


def test_move_detaches_first_and_attach_depends_on_it() -> None:
    d = desired(HOSTS, VMS, [volume("v")], [attach("x", "v", "a")])
    w = converge(d, base())
    d2 = desired(HOSTS, VMS, [volume("v")], [attach("x", "v", "b")])
    p = run(d2, w)
    assert [a.id for a in p.actions] == [
        "detach-volume:volume/v@h1/a",
        "attach-volume:attachment/x",
    ]
    assert p.actions[1].depends_on == ("detach-volume:volume/v@h1/a",)
    w2 = apply(w, p)
    assert ("vdb", "rbd/vol-v") not in _disks(w2, "a")
    assert ("vdb", "rbd/vol-v") in _disks(w2, "b")
    assert run(d2, w2).empty


def _detaching(w: ObservedWorld, dom: str, image: str = "rbd/vol-v") -> ObservedWorld:
    root = ObservedDisk("vda", f"rbd/vm-{dom}-root")
    return _set_disks(w, dom, (root, ObservedDisk("vdb", image, persistent=False)))


def test_pending_detach_is_requested_again_and_blocks_reattach_anywhere() -> None:
    d = desired(HOSTS, VMS, [volume("v")], [attach("x", "v", "a")])
    w = _detaching(converge(d, base()), "a")
    for target in ("a", "b"):
        d2 = desired(HOSTS, VMS, [volume("v")], [attach("x", "v", target)])
        p = run(d2, w)
        # a lost unplug request (guest still booting) must not leave it stuck: ask again
        assert [a.id for a in p.actions] == ["detach-volume:volume/v@h1/a"]
        assert p.actions[0].disk is not None
        assert p.actions[0].disk.rbd_image == "rbd/vol-v"
        assert reasons(p) == {"attachment/x": "Detaching"}  # never attached while live
        w2 = apply(w, p)
        assert ("vdb", "rbd/vol-v") not in _disks(w2, "a")
        p2 = run(d2, w2)
        assert kinds(p2) == [("attach-volume", "attachment/x")]
        assert p2.actions[0].domain is not None
        assert p2.actions[0].domain.name == target
        assert run(d2, apply(w2, p2)).empty


def test_pending_detach_without_attachment_is_requested_again() -> None:
    d = desired(HOSTS, VMS, [volume("v")], [attach("x", "v", "a")])
    w = _detaching(converge(d, base()), "a")
    d2 = desired(HOSTS, VMS, [volume("v")])
    p = run(d2, w)
    assert kinds(p) == [("detach-volume", "volume/v")]
    assert run(d2, apply(w, p)).empty


def test_pending_detach_is_asked_again_before_a_volume_delete_but_not_a_vm_destroy() -> None:
    vols = [volume("v", policy=DELETE), volume("keep")]
    d = desired(HOSTS, VMS, vols, [attach("x", "v", "a")])
    w = _detaching(converge(d, base()), "a")
    p = run(desired(HOSTS, VMS, [volume("keep")]), w)
    assert [a.id for a in p.actions] == ["detach-volume:volume/v@h1/a"]
    assert reasons(p) == {"volume/v": "Detaching"}  # not deleted while a guest holds it
    w2 = apply(w, p)
    assert kinds(run(desired(HOSTS, VMS, [volume("keep")]), w2)) == [("delete-volume", "volume/v")]
    # the VM leaves the spec: destroying it frees the disk; a guest that never answers the
    # unplug must not stall the deletion
    d3 = desired(HOSTS, [vm("b"), vm("c")], vols)
    p3 = run(d3, w, replace(SETTINGS, allow_mass_delete=True))
    assert not [a for a in p3.actions if a.kind == K.DETACH_VOLUME]
    destroy = next(a for a in p3.actions if a.kind == K.DESTROY_DOMAIN)
    assert destroy.depends_on == ()


def test_attachment_removed_from_spec_is_detached_and_volume_kept() -> None:
    d = desired(HOSTS, VMS, [volume("v")], [attach("x", "v", "a")])
    w = converge(d, base())
    p = run(desired(HOSTS, VMS, [volume("v")]), w)
    assert kinds(p) == [("detach-volume", "volume/v")]
    assert "vol-v" in apply(w, p).storage.images


def test_volume_with_retain_is_released_not_deleted() -> None:
    d = desired(HOSTS, VMS, [volume("v"), volume("keep")], [attach("x", "v", "a")])
    w = converge(d, base())
    p = run(desired(HOSTS, VMS, [volume("keep")]), w)
    assert kinds(p) == [("detach-volume", "volume/v")]
    assert p.released == ("volume/v",)
    assert "vol-v" in apply(w, p).storage.images


def test_volume_with_delete_policy_is_detached_then_deleted() -> None:
    d = desired(HOSTS, VMS, [volume("v", policy=DELETE), volume("keep")], [attach("x", "v", "a")])
    w = converge(d, base())
    p = run(desired(HOSTS, VMS, [volume("keep")]), w)
    assert kinds(p) == [("detach-volume", "volume/v"), ("delete-volume", "volume/v")]
    assert p.actions[1].depends_on == (p.actions[0].id,)
    w2 = apply(w, p)
    assert "vol-v" not in w2.storage.images
    assert p.released == ()


def test_recorded_policy_counts_not_the_spec() -> None:
    # the spec said Delete, but the image-meta still says Retain (meta update never ran)
    d = desired(HOSTS, VMS, [volume("v"), volume("keep")])
    w = converge(d, base())
    assert run(desired(HOSTS, VMS, [volume("keep")]), w).released == ("volume/v",)


def test_destroying_a_vm_detaches_its_volumes_first() -> None:
    d = desired(HOSTS, [*VMS, vm("d")], [volume("v")], [attach("x", "v", "d")])
    w = converge(d, base())
    p = run(desired(HOSTS, VMS, [volume("v")]), w)
    ids = [a.id for a in p.actions]
    assert ids == ["detach-volume:volume/v@h1/d", "destroy-domain:vm/d", "delete-root:vm/d"]
    assert "detach-volume:volume/v@h1/d" in p.actions[1].depends_on


def test_volume_on_a_foreign_domain_is_never_touched() -> None:
    d = desired(HOSTS, VMS, [volume("v")])
    w = converge(d, base())
    squatter = foreign("intruder", disks=[ObservedDisk("vdb", "rbd/vol-v")])
    h2 = w.hosts["h2"]
    w = replace(w, hosts={**w.hosts, "h2": replace(h2, domains=(*h2.domains, squatter))})
    p = run(desired(HOSTS, VMS, [volume("v")], [attach("x", "v", "a")]), w)
    assert p.empty
    assert reasons(p) == {"attachment/x": "VolumeInUse"}


def test_name_conflict_with_foreign_image_blocks_the_volume() -> None:
    from .builders import foreign_image

    w = world(ohost("h1"), images=[foreign_image("vol-v")])
    p = run(desired([host("h1", 1)], [], [volume("v")]), w)
    assert p.empty
    assert reasons(p) == {"volume/v": "NameConflict"}


def test_targets_skip_used_ones_and_run_out_cleanly() -> None:
    from reconciler.plan.settings import PlanSettings

    from .builders import CEPH

    settings = PlanSettings(CEPH, max_targets=2)
    vols = [volume(f"v{i}") for i in range(3)]
    atts = [attach(f"x{i}", f"v{i}", "a") for i in range(3)]
    p = run(desired(HOSTS, VMS, vols, atts), base(), settings)
    targets = [a.disk.target for a in p.actions if a.kind == K.ATTACH_VOLUME and a.disk]
    assert targets == ["vdb", "vdc"]
    assert reasons(p) == {"attachment/x2": "NoFreeTarget"}


def test_scratch_images_are_never_volumes_or_roots() -> None:
    """`volctl-tmp.<final>.<nonce>` (creation in flight, or crash debris) carries the same
    meta as the final image, but only the final name counts: the volume is still created,
    and scratch is never deleted, released or attached by the planner."""
    meta = {
        identity.META_MANAGED_BY: identity.MANAGED_BY,
        identity.META_KIND: "volume",
        identity.META_NAME: "v",
        identity.META_ID: "1",
        identity.META_RECLAIM: DELETE.value,
    }
    tmp_vol = identity.tmp_image_name("vol-v", "0badc0de")
    tmp_old = identity.tmp_image_name("vol-old", "0badc0de")
    tmp_root = identity.tmp_image_name("vm-a-root", "0badc0de")
    root_meta = {**meta, identity.META_KIND: "root", identity.META_NAME: "a"}
    old_meta = {**meta, identity.META_NAME: "old"}
    w = base()
    scratch = [
        ObservedImage(tmp_vol, GIB, meta),
        ObservedImage(tmp_old, GIB, old_meta),
        ObservedImage(tmp_root, GIB, root_meta),
    ]
    w = replace(
        w, storage=replace(w.storage, images={**w.storage.images, **{i.name: i for i in scratch}})
    )
    d = desired(HOSTS, VMS, [volume("v"), volume("keep")], [attach("x", "v", "a")])
    p = run(d, w)
    assert kinds(p) == [
        ("create-volume", "volume/keep"),
        ("create-volume", "volume/v"),
        ("attach-volume", "attachment/x"),
    ]
    assert not {image_of(a) for a in p.actions} & {tmp_vol, tmp_old, tmp_root}
    assert p.released == ()
    w2 = apply(w, p)
    assert run(d, w2).empty
    assert {tmp_vol, tmp_old, tmp_root} <= set(w2.storage.images)


def test_scratch_name_round_trip() -> None:
    name = identity.tmp_image_name("vm-web.1-root", "ab12")
    assert name == "volctl-tmp.vm-web.1-root.ab12"
    assert identity.tmp_image_target(name) == "vm-web.1-root"
    for other in ("vol-x", "volctl-tmp-x.y", "volctl-tmp.x", "volctl-tmp..n", "img-volctl-tmp.x.y"):
        assert identity.tmp_image_target(other) is None


def test_a_scsi_volume_is_attached_on_the_scsi_bus_as_sdx() -> None:
    scsi = replace(volume("v2"), bus="scsi")
    d = desired(
        HOSTS, VMS, [volume("v1"), scsi], [attach("x1", "v1", "a"), attach("x2", "v2", "a")]
    )
    w = base()
    p = run(d, w)
    att = {a.resource: a.disk for a in p.actions if a.kind == K.ATTACH_VOLUME}
    assert {r: (s.target, s.bus.value) for r, s in att.items() if s} == {
        "attachment/x1": ("vdb", "virtio"),
        "attachment/x2": ("sdb", "scsi"),
    }
    assert run(d, apply(w, p)).empty


def test_a_target_only_the_persistent_definition_holds_is_not_free() -> None:
    """R1 defect 6 (seed 473317888, trial 7): a controller killed mid-move left vol-v1 in
    domain a's persistent definition at vdc while the live domain had it at vdb.  The planner
    counted only live targets, so every attach of another volume to `a` chose vdc, which
    libvirt's persistent definition holds: refused on every pass, never converged."""
    d = desired(
        HOSTS, VMS, [volume("v1"), volume("v2")], [attach("x1", "v1", "a"), attach("x2", "v2", "a")]
    )
    w = apply(base(), run(d, base()))  # v1 and v2 created; attached: vdb, vdc
    w = _set_disks(
        w, "a", (ObservedDisk("vda", "rbd/vm-a-root"), ObservedDisk("vdb", "rbd/vol-v1"))
    )
    hosts = {
        n: replace(
            h,
            domains=tuple(
                replace(x, config_targets=frozenset({"vda", "vdc"})) if x.name == "a" else x
                for x in h.domains
            ),
        )
        for n, h in w.hosts.items()
    }
    w = replace(w, hosts=hosts)
    p = run(d, w)
    att = [a for a in p.actions if a.kind == K.ATTACH_VOLUME]
    assert [(a.resource, a.disk.target if a.disk else None) for a in att] == [
        ("attachment/x2", "vdd")  # vdb live, vdc persistent: neither is free
    ]
