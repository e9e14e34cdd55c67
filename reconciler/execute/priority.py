"""Which ready action the executor starts first: pool work, then the most work still behind it.

The plan fixes what waits for what; among the actions whose dependencies are done, the
executor is free to choose, and with bounded slots the choice decides the wall time.  Two
rules, in this order:

1. **Pool actions first** (`POOL_KINDS`: imports, clones, creates, resizes, image-meta,
   removals).  They head every chain (no define without its root clone, no attach without
   its volume), they take milliseconds on a quiet machine, and they get slow on a busy one:
   bench B1 measured RBD creates left until the guests were booting (the Ceph daemons then
   compete with 40 TCG guests for 2 cores) taking 45 s for 40, against about a second when
   they ran first.  Done first, the pool is finished early, and the pass re-observes it while
   the domain work goes on (controller/verify.py).
2. **Then the highest rank**: an action's rank is its own typical cost plus the largest
   rank among the actions that wait for it (critical-path list scheduling, its "bottom
   level").  A root clone (define, a slow start and an attach behind it) goes before a volume
   create (one attach behind it); a define before a start, a start before an attach.

Equal keys keep plan order, so the choice is deterministic.  The costs are rough medians of
each kind's backend calls on the lab as B1's sequential baseline measured them (a start
launches qemu: seconds; a define or an RBD create: tens of milliseconds); only their order of
magnitude matters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.plan.actions import Action, ActionKind

# the kinds whose handlers change the pool's images (existence, size or image-meta)
POOL_KINDS = frozenset(
    {
        ActionKind.IMPORT_IMAGE,
        ActionKind.CLONE_ROOT,
        ActionKind.DELETE_ROOT,
        ActionKind.CREATE_VOLUME,
        ActionKind.RESIZE_VOLUME,
        ActionKind.SET_VOLUME_META,
        ActionKind.DELETE_VOLUME,
    }
)

# Typical seconds per kind (B1's median calls, rounded; waits for the guest included).
COST: Mapping[ActionKind, float] = {
    ActionKind.IMPORT_IMAGE: 10.0,  # copies a whole image into RBD
    ActionKind.CLONE_ROOT: 0.15,  # clone + resize + image-meta
    ActionKind.DEFINE_DOMAIN: 0.03,
    ActionKind.START_DOMAIN: 5.0,  # qemu start-up
    ActionKind.STOP_DOMAIN: 1.0,
    ActionKind.DESTROY_DOMAIN: 1.0,
    ActionKind.DELETE_ROOT: 0.1,
    ActionKind.CREATE_VOLUME: 0.05,
    ActionKind.RESIZE_VOLUME: 0.1,
    ActionKind.SET_VOLUME_META: 0.02,
    ActionKind.DELETE_VOLUME: 0.1,
    ActionKind.ATTACH_VOLUME: 0.5,  # PCI hot-plug into a running guest
    ActionKind.DETACH_VOLUME: 1.0,  # waits for the guest to let go
    ActionKind.ATTACH_NIC: 0.5,
    ActionKind.DETACH_NIC: 1.0,
}


def ranks(actions: Sequence[Action]) -> dict[str, float]:
    """Each action's cost plus the largest rank of the actions that depend on it.

    Dependencies on actions outside `actions` are ignored (they are not this run's work).
    `actions` must be in dependency order, as a `Plan`'s are; an action listed before one
    it depends on (a cycle, a planner bug) simply gets no credit for it.
    """
    users: dict[str, list[str]] = {}
    for a in actions:
        for dep in set(a.depends_on):
            users.setdefault(dep, []).append(a.id)
    rank: dict[str, float] = {}
    for a in reversed(actions):
        behind = [rank[u] for u in users.get(a.id, ()) if u in rank]
        rank[a.id] = COST[a.kind] + max(behind, default=0.0)
    return rank


def by_priority(actions: Sequence[Action]) -> list[Action]:
    """Pool actions first, then highest rank first; ties keep their given (plan) order."""
    rank = ranks(actions)
    order = {a.id: i for i, a in enumerate(actions)}
    return sorted(actions, key=lambda a: (a.kind not in POOL_KINDS, -rank[a.id], order[a.id]))
