"""Safety guards over the deletions a plan wants: split-brain and mass deletion.

Deletion is the one thing a reconciler cannot undo, so it is held back whenever the
knowledge behind it may be partial: while any host is unreachable (its VMs are unknown,
not missing), while Ceph is unreachable, and when the desired state would delete more than
`delete_guard_ratio` of the managed resources at once (an empty or truncated spec
directory looks exactly like that).  Held deletions are whole groups; every resource of a
held group is reported as Blocked with the reason and, for the guard, the override.
"""

from __future__ import annotations

from reconciler.plan.draft import Draft
from reconciler.plan.reasons import BlockReason
from reconciler.plan.settings import PlanSettings
from reconciler.plan.world import World


def managed_count(world: World) -> int:
    """Managed VMs (domains or root disks) plus managed volumes."""
    return len(set(world.ours_by_vm) | set(world.roots)) + len(world.volumes)


def hold_deletions(world: World, draft: Draft, settings: PlanSettings) -> None:
    groups = sorted(g for g, ids in draft.groups.items() if ids)
    if not groups:
        return
    if not world.all_known:
        reason = BlockReason.DEFERRED_WHILE_UNKNOWN
        message = (
            f"host(s) {world.unknown_text()} cannot be observed; nothing is deleted until "
            "every host is known"
        )
    elif not world.storage_ok:
        reason = BlockReason.DEFERRED_WHILE_UNKNOWN
        message = "Ceph cannot be observed; nothing is deleted until it can"
    else:
        total = managed_count(world)
        count = len(groups)
        if settings.allow_mass_delete or count <= 1 or count <= settings.delete_guard_ratio * total:
            return
        reason = BlockReason.DELETE_GUARD
        message = (
            f"this plan would delete {count} of {total} managed resources, more than "
            f"{settings.delete_guard_ratio:.0%}; nothing is deleted. If the spec is right, "
            "allow it with the override allow_mass_delete (volctl --allow-mass-delete)"
        )
    for group in groups:
        draft.hold_group(group, reason, message)
