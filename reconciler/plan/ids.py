"""Integer ids (vmid, volumeid): reuse what the resource carries, allocate the rest in order.

volctl keeps no database: a VM's vmid lives in its domain's owner mark and in its root
disk's image-meta, a volume's volumeid in its image-meta.  An existing resource keeps the
id it carries; new resources get max(high-water mark, known ids of that kind) + 1, + 2, ...
in name order, so the same inputs always give the same ids.  Ids recorded on resources that
are no longer in the spec still count as known, so an id is never handed out twice while its
old owner exists; the high-water mark (`IdLedger`, observed with the pool and advanced by the
storage backend before it creates a resource with a new id) keeps it from coming back after
the owner is deleted.  Without a ledger (a deployment from before it) the mark is 0 and the
known ids alone decide, so existing resources keep their ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.plan.world import World, meta_int


def vm_ids(world: World) -> dict[str, int]:
    """vmid of every desired VM."""
    known: dict[str, int] = {}
    for vm, refs in world.ours_by_vm.items():
        for ref in refs:  # host order: the lowest-pmid copy wins
            if ref.domain.mark is not None:
                known.setdefault(vm, ref.domain.mark.vmid)
    for vm, root in world.roots.items():
        value = meta_int(root)
        if value is not None:
            known.setdefault(vm, value)
    return _allocate(world.desired.vms, known, world.observed.storage.ids.vm)


def volume_ids(world: World) -> dict[str, int]:
    """volumeid of every desired volume."""
    known: dict[str, int] = {}
    for vol, img in world.volumes.items():
        value = meta_int(img)
        if value is not None:
            known[vol] = value
    return _allocate(world.desired.volumes, known, world.observed.storage.ids.volume)


def _allocate(wanted: Iterable[str], known: Mapping[str, int], mark: int) -> dict[str, int]:
    next_id = max(mark, *known.values()) + 1 if known else mark + 1
    out: dict[str, int] = {}
    for name in sorted(wanted):
        if name in known:
            out[name] = known[name]
        else:
            out[name] = next_id
            next_id += 1
    return out
