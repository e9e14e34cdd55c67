"""The draft's bookkeeping: an action never survives a dependency that is not planned.

These rows drive `Draft` directly, with hand-made actions, because the situations they cover
(a held deletion group that an attach waits for, a dependency on an action some rule did
not plan, a chain of such dependencies) arise in the planner only in rare worlds.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.plan.actions import AttachVolume, DeleteRoot, DetachVolume, Plan, StartDomain
from reconciler.plan.draft import Draft
from reconciler.plan.reasons import BlockReason

from .builders import attach as attach_
from .builders import converge, desired, host, ohost, run, vm, volume, world
from .test_actions import DISK, DOM


def detach() -> DetachVolume:
    return DetachVolume(
        resource="volume/v", qualifier="h1/a", host="h1", domain=DOM, disk=DISK, reason="moved"
    )


def attach(*deps: str) -> AttachVolume:
    return AttachVolume(resource="attachment/x", host="h1", domain=DOM, disk=DISK, depends_on=deps)


def blocked(p: Plan) -> dict[str, tuple[str, str]]:
    return {b.resource: (b.reason, b.message) for b in p.blocked}


def test_the_same_id_twice_keeps_the_first() -> None:
    d = Draft()
    first = DeleteRoot(resource="vm/a", image_name="vm-a-root", reason="first")
    assert d.add(first) == d.add(DeleteRoot(resource="vm/a", image_name="x")) == first.id
    assert d.finish().actions == (first,)


def test_an_attach_waiting_for_a_held_detach_is_dropped_with_the_groups_reason() -> None:
    d = Draft()
    det = d.add(detach(), deletes="vm/a")
    d.add(attach(det))
    d.delete_change("vm/a", "on h1", "not in the spec")
    d.hold_group("vm/a", BlockReason.DEFERRED_WHILE_UNKNOWN, "h2 cannot be observed")
    p = d.finish()
    assert p.actions == ()
    assert p.changes == ()  # the held group's display change went with it
    assert blocked(p) == {
        "vm/a": (BlockReason.DEFERRED_WHILE_UNKNOWN, "h2 cannot be observed"),
        "attachment/x": (
            BlockReason.DEFERRED_WHILE_UNKNOWN,
            "attach-volume waits for detach-volume:volume/v@h1/a, which is not planned: "
            "h2 cannot be observed",
        ),
    }


def test_a_dependency_nobody_planned_blocks_as_dependency_blocked_down_the_chain() -> None:
    d = Draft()
    start = d.add(StartDomain(resource="vm/a", host="h1", domain=DOM, depends_on=("nope:x",)))
    d.add(attach(start))
    kept = d.add(DeleteRoot(resource="vm/z", image_name="vm-z-root"))
    p = d.finish()
    assert [a.id for a in p.actions] == [kept]
    assert blocked(p) == {
        "vm/a": (
            BlockReason.DEPENDENCY_BLOCKED,
            "start-domain waits for nope:x, which is not planned: see the blocked resources",
        ),
        "attachment/x": (
            BlockReason.DEPENDENCY_BLOCKED,
            "attach-volume waits for start-domain:vm/a, which is not planned: "
            "start-domain waits for nope:x, which is not planned: see the blocked resources",
        ),
    }


def test_moving_a_volume_off_a_vm_whose_deletion_is_held_says_why() -> None:
    """The planner's view of the same rule: VM a left the spec while h2 is unknown, so its
    deletion (with the detach of v) is held; the attach of v to b waits, for that reason."""
    hosts = [host("h1", 1), host("h2", 2)]
    d = desired(hosts, [vm("a", host_="h1")], [volume("v")], [attach_("x", "v", "a")])
    w = converge(d, world(ohost("h1"), ohost("h2")))
    w = replace(w, hosts={**w.hosts, "h2": ohost("h2", reachable=False)})
    d2 = desired(hosts, [vm("b", host_="h1")], [volume("v")], [attach_("y", "v", "b")])
    p = run(d2, w)
    why = blocked(p)
    assert why["vm/a"][0] == BlockReason.DEFERRED_WHILE_UNKNOWN
    assert why["attachment/y"] == (
        BlockReason.DEFERRED_WHILE_UNKNOWN,
        "attach-volume waits for detach-volume:volume/v@h1/a, which is not planned: "
        + why["vm/a"][1],
    )
    assert not [a for a in p.actions if a.resource in {"vm/a", "attachment/y", "volume/v"}]
