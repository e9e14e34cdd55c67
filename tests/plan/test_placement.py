"""Placement: first fit in pmid order, pins, anti-affinity, capacity, unschedulable reasons."""

from __future__ import annotations

from reconciler.observe.types import DomainState

from .builders import (
    converge,
    desired,
    foreign,
    host,
    itype,
    ohost,
    reasons,
    run,
    vm,
    world,
)
from .sim import apply


def test_first_fit_in_pmid_order_counts_the_plans_own_placements() -> None:
    # pmid order is h2 (1) before h1 (2), whatever the names say
    hosts = [host("h1", 2), host("h2", 1)]
    d = desired(hosts, [vm("a", "big"), vm("b", "big"), vm("c", "big")])
    w = world(ohost("h1", cpus=8), ohost("h2", cpus=8))
    p = run(d, w)
    assert p.placements == {"vm/a": "h2", "vm/b": "h2", "vm/c": "h1"}


def test_free_capacity_counts_running_foreign_domains_not_stopped_ones() -> None:
    hosts = [host("h1", 1), host("h2", 2)]
    d = desired(hosts, [vm("a", "big")])
    busy = ohost("h1", cpus=8, domains=[foreign("db", vcpus=6)])
    p = run(d, world(busy, ohost("h2")))
    assert p.placements == {"vm/a": "h2"}
    idle = ohost("h1", cpus=8, domains=[foreign("db", vcpus=6, state=DomainState.SHUTOFF)])
    assert run(d, world(idle, ohost("h2"))).placements == {"vm/a": "h1"}


def test_ram_counts_too() -> None:
    hosts = [host("h1", 1), host("h2", 2)]
    d = desired(hosts, [vm("a", "big")])
    p = run(d, world(ohost("h1", mem=4000), ohost("h2")))
    assert p.placements == {"vm/a": "h2"}


def test_capacity_override_replaces_what_libvirt_reports() -> None:
    d = desired([host("h1", 1, cpu=2), host("h2", 2)], [vm("a", "big")])
    p = run(d, world(ohost("h1", cpus=64), ohost("h2")))
    assert p.placements == {"vm/a": "h2"}


def test_stopped_vms_of_ours_keep_their_reservation() -> None:
    hosts = [host("h1", 1, cpu=4), host("h2", 2)]
    w = converge(desired(hosts, [vm("a", "big", running=False)]), world(ohost("h1"), ohost("h2")))
    p = run(desired(hosts, [vm("a", "big", running=False), vm("b")]), w)
    assert p.placements["vm/b"] == "h2"


def test_pin_is_honoured_or_unschedulable_with_reason() -> None:
    hosts = [host("h1", 1), host("h2", 2, cpu=2)]
    w = world(ohost("h1"), ohost("h2"))
    assert run(desired(hosts, [vm("a", host_="h2")]), w).placements == {"vm/a": "h2"}
    p = run(desired(hosts, [vm("a", "big", host_="h2")]), w)
    assert p.empty
    assert reasons(p) == {"vm/a": "Unschedulable"}
    assert "h2: needs 4 CPU, 2 free" in p.blocked[0].message


def test_anti_affinity_spreads_a_group_and_counts_existing_members() -> None:
    hosts = [host("h1", 1), host("h2", 2), host("h3", 3)]
    w = world(ohost("h1"), ohost("h2"), ohost("h3"))
    w = converge(desired(hosts, [vm("web-1", group="web")]), w)
    d = desired(hosts, [vm(f"web-{i}", group="web") for i in (1, 2, 3)] + [vm("db")])
    p = run(d, w)
    assert p.placements == {"vm/web-1": "h1", "vm/web-2": "h2", "vm/web-3": "h3", "vm/db": "h1"}


def test_unschedulable_message_lists_every_host_reason() -> None:
    hosts = [host("h1", 1, cpu=1), host("h2", 2), host("h3", 3)]
    w = world(ohost("h1"), ohost("h2"), ohost("h3", reachable=False))
    w = converge(desired(hosts, [vm("web-1", group="web", host_="h2")]), w)
    d = desired(hosts, [vm("web-1", group="web", host_="h2"), vm("web-2", "big", group="web")])
    p = run(d, w)
    assert reasons(p) == {"vm/web-2": "Unschedulable"}
    msg = p.blocked[0].message
    assert "h1: needs 4 CPU, 1 free and needs 4096 MiB RAM" not in msg  # RAM fits on h1
    assert "h1: needs 4 CPU, 1 free" in msg
    assert "h2: anti-affinity group web" in msg
    assert "h3: unreachable" in msg


def test_no_fit_never_crashes_and_others_still_placed() -> None:
    hosts = [host("h1", 1, cpu=1)]
    d = desired(hosts, [vm("a", "big"), vm("b")], types=[itype("big", cpu=9), itype("small")])
    p = run(d, world(ohost("h1")))
    assert reasons(p) == {"vm/a": "Unschedulable"}
    assert p.placements == {"vm/b": "h1"}


def test_existing_vm_stays_where_it_is_even_if_pin_changes() -> None:
    hosts = [host("h1", 1), host("h2", 2)]
    w = converge(desired(hosts, [vm("a")]), world(ohost("h1"), ohost("h2")))
    p = run(desired(hosts, [vm("a", host_="h2")]), w)
    assert p.empty
    assert p.placements == {"vm/a": "h1"}


def test_foreign_domain_with_the_same_name_makes_a_host_unusable() -> None:
    hosts = [host("h1", 1), host("h2", 2)]
    w = world(ohost("h1", domains=[foreign("a")]), ohost("h2"))
    p = run(desired(hosts, [vm("a")]), w)
    assert p.placements == {"vm/a": "h2"}
    w2 = apply(w, p)
    assert [d.name for d in w2.hosts["h1"].domains] == ["a"]
    assert w2.hosts["h1"].domains[0].mark is None


def test_placement_is_deterministic() -> None:
    hosts = [host(f"h{i}", i, cpu=3) for i in range(1, 6)]
    vms = [vm(f"v{i:02d}", "big" if i % 3 == 0 else "small", group=f"g{i % 2}") for i in range(20)]
    w = world(*(ohost(f"h{i}") for i in range(1, 6)))
    d = desired(hosts, vms, types=[itype("small"), itype("big", cpu=2, ram=2048, tid=2)])
    assert run(d, w) == run(d, w)
