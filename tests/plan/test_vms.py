"""Planner rules for VMs: create chain, images, cold resize, replace, start/stop, drift."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler import identity
from reconciler.observe.types import DomainState, ObservedDomain, ObservedWorld
from reconciler.plan.actions import ActionKind, ChangeOp

from .builders import (
    GIB,
    SETTINGS,
    converge,
    desired,
    domain_of,
    foreign_image,
    host,
    image,
    itype,
    kinds,
    ohost,
    reasons,
    root_of,
    run,
    vm,
    world,
)
from .sim import apply

K = ActionKind
HOSTS = [host("h1", 1), host("h2", 2)]


def empty() -> ObservedWorld:
    return world(ohost("h1"), ohost("h2"))


def _edit_domain(w: ObservedWorld, name: str, **changes: object) -> ObservedWorld:
    hosts = {}
    for hn, h in w.hosts.items():
        doms = tuple(
            replace(d, **changes) if d.name == name else d  # type: ignore[arg-type]
            for d in h.domains
        )
        hosts[hn] = replace(h, domains=doms)
    return replace(w, hosts=hosts)


def _drop_domain(w: ObservedWorld, name: str) -> ObservedWorld:
    hosts = {
        hn: replace(h, domains=tuple(d for d in h.domains if d.name != name))
        for hn, h in w.hosts.items()
    }
    return replace(w, hosts=hosts)


def test_create_chain_imports_image_once_then_clones_defines_starts() -> None:
    d = desired(HOSTS, [vm("a"), vm("b", running=False)])
    p = run(d, empty())
    assert kinds(p) == [
        ("import-image", "image/deb"),
        ("clone-root", "vm/a"),
        ("clone-root", "vm/b"),
        ("define-domain", "vm/a"),
        ("define-domain", "vm/b"),
        ("start-domain", "vm/a"),
    ]
    clone = next(a for a in p.actions if a.id == "clone-root:vm/a")
    assert clone.parent == f"rbd/img-deb@{identity.BASE_SNAPSHOT}"
    assert clone.size_bytes == 10 * GIB
    assert clone.depends_on == ("import-image:image/deb",)
    assert dict(clone.meta)[identity.META_KIND] == "root"
    define = next(a for a in p.actions if a.id == "define-domain:vm/a")
    assert define.domain is not None
    assert define.domain.vcpus == 1
    assert define.domain.memory_mib == 1024
    assert define.domain.root_image == "rbd/vm-a-root"
    assert define.domain.console_log == "/var/log/volctl/a+console.log"
    w = apply(empty(), p)
    found = domain_of(w, "a")
    assert found is not None
    assert found[1].state == DomainState.RUNNING
    stopped = domain_of(w, "b")
    assert stopped is not None
    assert stopped[1].state == DomainState.SHUTOFF
    assert run(d, w).empty


def test_imported_image_is_not_imported_again_and_unused_image_never() -> None:
    d = desired(HOSTS, [vm("a")], images=[image("deb"), image("unused", 2)])
    w = converge(d, empty())
    assert "img-unused" not in w.storage.images
    d2 = desired(HOSTS, [vm("a"), vm("b")], images=[image("deb"), image("unused", 2)])
    assert kinds(run(d2, w))[0] == ("clone-root", "vm/b")


def test_rbd_sourced_image_clones_from_its_snapshot() -> None:
    src = "rbd/golden@v1"
    d = desired(HOSTS, [vm("a", image_="g")], images=[image("g", rbd=src)])
    p = run(d, world(ohost("h1"), external={src: True}))
    clone = next(a for a in p.actions if a.kind == K.CLONE_ROOT)
    assert clone.parent == src
    assert not any(a.kind == K.IMPORT_IMAGE for a in p.actions)


def test_missing_rbd_snapshot_blocks_the_vm() -> None:
    d = desired(HOSTS, [vm("a", image_="g")], images=[image("g", rbd="rbd/golden@v1")])
    p = run(d, world(ohost("h1"), external={"rbd/golden@v1": False}))
    assert p.empty
    assert reasons(p) == {"vm/a": "ImageMissing"}


def test_foreign_image_with_our_name_blocks_instead_of_being_touched() -> None:
    d = desired(HOSTS, [vm("a")])
    p = run(d, world(ohost("h1"), images=[foreign_image("img-deb")]))
    assert p.empty
    assert reasons(p) == {"vm/a": "ImageConflict"}
    p2 = run(d, world(ohost("h1"), images=[foreign_image("vm-a-root")]))
    assert reasons(p2) == {"vm/a": "NameConflict"}


def test_cold_resize_stops_redefines_starts_and_grows_the_root() -> None:
    d = desired(HOSTS, [vm("a")])
    w = converge(d, empty())
    d2 = desired(HOSTS, [vm("a", "big")])
    p = run(d2, w)
    assert kinds(p) == [
        ("stop-domain", "vm/a"),
        ("resize-volume", "vm/a"),
        ("define-domain", "vm/a"),
        ("start-domain", "vm/a"),
    ]
    grow = p.actions[1]
    assert grow.size_bytes == 20 * GIB
    assert grow.domain is None  # the domain is stopped: no guest notification
    assert p.changes[0].op == ChangeOp.UPDATE
    w2 = apply(w, p)
    found = domain_of(w2, "a")
    assert found is not None
    assert (found[1].vcpus, found[1].memory_mib, found[1].state) == (4, 4096, DomainState.RUNNING)
    root = root_of(w2, "a")
    assert root is not None
    assert root.size_bytes == 20 * GIB
    assert run(d2, w2).empty


def test_disk_only_growth_is_online_and_tells_the_running_guest() -> None:
    d = desired(HOSTS, [vm("a")])
    w = converge(d, empty())
    d2 = desired(HOSTS, [vm("a")], types=[itype("small", disk=30), itype("big")])
    p = run(d2, w)
    assert kinds(p) == [("resize-volume", "vm/a"), ("define-domain", "vm/a")]
    assert p.actions[0].host == "h1"
    assert p.actions[0].domain is not None
    assert run(d2, apply(w, p)).empty


def test_resize_that_does_not_fit_is_unschedulable_and_changes_nothing() -> None:
    hosts = [host("h1", 1, cpu=2)]
    d = desired(hosts, [vm("a")])
    w = converge(d, world(ohost("h1")))
    p = run(desired(hosts, [vm("a", "big")]), w)
    assert p.empty
    assert reasons(p) == {"vm/a": "Unschedulable"}
    assert "h1: needs 3 CPU, 1 free" in p.blocked[0].message


def test_image_change_replaces_the_vm_on_its_host() -> None:
    imgs = [image("deb"), image("alp", 2)]
    d = desired(HOSTS, [vm("a")], images=imgs)
    w = converge(d, empty())
    d2 = desired(HOSTS, [vm("a", image_="alp")], images=imgs)
    p = run(d2, w)
    assert kinds(p) == [
        ("import-image", "image/alp"),
        ("destroy-domain", "vm/a"),
        ("delete-root", "vm/a"),
        ("clone-root", "vm/a"),
        ("define-domain", "vm/a"),
        ("start-domain", "vm/a"),
    ]
    assert [c.op for c in p.changes if c.resource == "vm/a"] == [ChangeOp.REPLACE]
    w2 = apply(w, p)
    root = root_of(w2, "a")
    assert root is not None
    assert root.parent == f"rbd/img-alp@{identity.BASE_SNAPSHOT}"
    assert domain_of(w2, "a") is not None
    assert run(d2, w2).empty


@pytest.mark.parametrize(
    ("running", "state", "expected"),
    [
        (False, DomainState.RUNNING, [("stop-domain", "vm/a")]),
        (True, DomainState.SHUTOFF, [("start-domain", "vm/a")]),
        (True, DomainState.RUNNING, []),
        (False, DomainState.SHUTOFF, []),
        (True, DomainState.PAUSED, []),  # paused by an admin: left alone
    ],
)
def test_running_flag_starts_and_stops(
    running: bool, state: DomainState, expected: list[tuple[str, str]]
) -> None:
    w = converge(desired(HOSTS, [vm("a")]), empty())
    w = _edit_domain(w, "a", state=state)
    p = run(desired(HOSTS, [vm("a", running=running)]), w)
    assert kinds(p) == expected


def test_domain_removed_out_of_band_is_redefined_on_its_root_disk() -> None:
    d = desired(HOSTS, [vm("a")])
    w = _drop_domain(converge(d, empty()), "a")
    p = run(d, w)
    assert kinds(p) == [("define-domain", "vm/a"), ("start-domain", "vm/a")]
    w2 = apply(w, p)
    assert run(d, w2).empty


def test_out_of_band_cpu_change_is_repaired() -> None:
    d = desired(HOSTS, [vm("a")])
    w = _edit_domain(converge(d, empty()), "a", vcpus=3)
    p = run(d, w)
    assert kinds(p) == [
        ("stop-domain", "vm/a"),
        ("define-domain", "vm/a"),
        ("start-domain", "vm/a"),
    ]


def test_duplicate_domains_keep_the_lowest_pmid_copy() -> None:
    d = desired(HOSTS, [vm("a")])
    w = converge(d, empty())
    found = domain_of(w, "a")
    assert found is not None
    assert found[0] == "h1"
    copy: ObservedDomain = replace(found[1], uuid="other")
    w = replace(w, hosts={**w.hosts, "h2": replace(w.hosts["h2"], domains=(copy,))})
    p = run(d, w)
    assert [(a.id, a.host) for a in p.actions] == [("destroy-domain:vm/a@h2", "h2")]
    w2 = apply(w, p)
    assert w2.hosts["h1"].domains
    assert not w2.hosts["h2"].domains
    assert root_of(w2, "a") is not None


def test_vm_removed_from_spec_is_destroyed_then_its_root_deleted() -> None:
    w = converge(desired(HOSTS, [vm("a"), vm("b"), vm("c")]), empty())
    p = run(desired(HOSTS, [vm("a"), vm("b")]), w)
    assert kinds(p) == [("destroy-domain", "vm/c"), ("delete-root", "vm/c")]
    assert p.actions[1].depends_on == ("destroy-domain:vm/c",)
    w2 = apply(w, p)
    assert domain_of(w2, "c") is None
    assert root_of(w2, "c") is None


def test_orphan_root_disk_is_deleted() -> None:
    w = converge(desired(HOSTS, [vm("a"), vm("b"), vm("c")]), empty())
    w = _drop_domain(w, "c")
    p = run(desired(HOSTS, [vm("a"), vm("b")]), w)
    assert kinds(p) == [("delete-root", "vm/c")]


def test_spec_errors_block_instead_of_crashing() -> None:
    d = desired(HOSTS, [vm("a", type_="nope"), vm("b", image_="nope")])
    p = run(d, empty())
    assert p.empty
    assert reasons(p) == {"vm/a": "InvalidSpec", "vm/b": "InvalidSpec"}
    assert SETTINGS.targets()[0] == "vdb"
