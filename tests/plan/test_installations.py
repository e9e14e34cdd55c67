"""Two installations on the same hosts: the planner never acts on the other one's domains.

The observed domains are built the way the libvirt backend builds them: the XML another
installation (or an older volctl) wrote is parsed, and `domxml.owned_mark` keeps only the
marks this installation owns.  The plan must then leave those domains out of every action,
still count them against capacity, and report a name clash instead of taking the domain.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.backends import domxml
from reconciler.identity import Installation
from reconciler.observe.types import DomainState, ObservedDomain, ObservedImage
from reconciler.payload import DomainSpec
from reconciler.plan.actions import Action
from reconciler.plan.reasons import BlockReason
from reconciler.plan.settings import PlanSettings

from .builders import CEPH, GIB, converge, desired, host, ohost, run, vm, world

POOL = "pool-b"
US = Installation("b", POOL)
SETTINGS = PlanSettings(replace(CEPH, pool=POOL), allow_mass_delete=True)


def seen(
    name: str,
    *,
    by: str | None,
    pool: str,
    vcpus: int = 1,
    state: DomainState = DomainState.RUNNING,
) -> ObservedDomain:
    """A domain volctl installation `by` (None: a volctl before installations) defined with
    its root disk in `pool`, as our backend observes it."""
    spec = DomainSpec(
        name, 7, "hash", vcpus, 1024, f"{pool}/vm-{name}-root", "/c", replace(CEPH, pool=pool)
    )
    parsed = domxml.parse_domain(domxml.render_domain(spec, installation=by))
    mark = domxml.owned_mark(parsed.mark, parsed.disks, US)
    return ObservedDomain(name, parsed.uuid, state, parsed.vcpus, 1024, mark, parsed.disks)


def domains_in(actions: tuple[Action, ...]) -> set[str]:
    return {a.domain.name for a in actions if getattr(a, "domain", None) is not None}  # type: ignore[attr-defined]


def root(name: str, pool_owner: str | None = None) -> ObservedImage:
    meta = {"volctl.managed-by": "volctl", "volctl.kind": "root", "volctl.name": name}
    if pool_owner is not None:
        meta["volctl.installation"] = pool_owner
    return ObservedImage(f"vm-{name}-root", 10 * GIB, meta)


def test_another_installations_domains_are_in_no_action_and_still_use_capacity() -> None:
    h1 = ohost(
        "h1",
        cpus=4,
        domains=[
            seen("web", by="a", pool="pool-a", vcpus=2),  # installation a, its own pool
            seen("batch", by="a", pool=POOL, vcpus=1, state=DomainState.SHUTOFF),  # a, our pool
            seen("old", by=None, pool="pool-a", vcpus=1),  # pre-installation volctl, pool a
        ],
    )
    # our spec has none of them: to installation b they are not orphans but foreign
    p = run(desired([host("h1", 1)], [vm("api", type_="big")]), world(h1), SETTINGS)
    assert not domains_in(p.actions) & {"web", "batch", "old"}
    # `big` needs 4 CPUs; a's running domains hold 3 of h1's 4
    assert [b.reason for b in p.blocked if b.resource == "vm/api"] == [BlockReason.UNSCHEDULABLE]
    after = converge(desired([host("h1", 1)]), world(h1), SETTINGS)
    assert {d.name: d for d in after.hosts["h1"].domains} == {d.name: d for d in h1.domains}


def test_a_name_clash_with_another_installation_blocks_instead_of_taking_it() -> None:
    h1 = ohost("h1", domains=[seen("web", by="a", pool="pool-a")])
    d = desired([host("h1", 1)], [vm("web", host_="h1")])
    p = run(d, world(h1), SETTINGS)
    assert "web" not in domains_in(p.actions)
    blocked = {b.resource: b for b in p.blocked}
    assert "vm/web" in blocked
    assert "already exists" in blocked["vm/web"].message


def test_legacy_mark_in_our_pool_is_ours_and_removed_when_it_leaves_the_spec() -> None:
    h1 = ohost("h1", domains=[seen("mine", by=None, pool=POOL), seen("x", by="b", pool=POOL)])
    p = run(desired([host("h1", 1)]), world(h1, images=[root("mine"), root("x")]), SETTINGS)
    assert domains_in(p.actions) == {"mine", "x"}  # both ours: orphans of installation b
    kept = run(desired([host("h1", 1)], [vm("mine"), vm("x")]), world(h1), SETTINGS)
    assert "destroy-domain" not in {a.kind.value for a in kept.actions}


def test_root_disks_marked_by_another_installation_are_never_removed() -> None:
    """Installations under explicit names may share a pool: image-meta names the owner."""
    img = replace(root("gone", pool_owner="a"), other_installation=True)
    p = run(desired([host("h1", 1)]), world(ohost("h1"), images=[img]), SETTINGS)
    assert not [a for a in p.actions if getattr(a, "image_name", None) == img.name]
    mine = root("gone", pool_owner="b")
    p2 = run(desired([host("h1", 1)]), world(ohost("h1"), images=[mine]), SETTINGS)
    assert [a.kind.value for a in p2.actions] == ["delete-root"]
