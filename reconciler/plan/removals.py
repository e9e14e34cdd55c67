"""Rules for VMs that left the spec: destroy their domains, then remove their root disks.

Each VM's removal is one deletion group ("vm/NAME": its detaches, every copy of its domain,
its root disk), so that the guard can hold it as a whole.  A root disk with no domain and
no desired VM (a crash between destroy and remove, say) is removed on its own.  Anything
without our mark is never considered.
"""

from __future__ import annotations

from reconciler import identity
from reconciler.plan.actions import DeleteRoot, DestroyDomain
from reconciler.plan.attachments import Detaches
from reconciler.plan.draft import Draft
from reconciler.plan.reasons import BlockReason
from reconciler.plan.specs import domain_text, gib, observed_domain
from reconciler.plan.world import World


def plan_removals(world: World, draft: Draft, detaches: Detaches) -> None:
    for name in sorted(set(world.ours_by_vm) | set(world.roots)):
        if name in world.desired.vms:
            continue
        res = f"vm/{name}"
        refs = world.domains_of(name)
        root = world.roots.get(name)
        if root is not None and root.watchers and not refs:
            draft.block(
                res,
                BlockReason.ROOT_IN_USE,
                f"root disk {identity.root_disk_name(name)} is open by a client volctl cannot "
                f"see (watchers: {', '.join(root.watchers)}); it is not removed",
            )
            continue
        destroys: list[str] = []
        for ref in refs:
            draft.placements.setdefault(res, ref.host)
            deps = detaches.by_domain.get((ref.host, ref.domain.name), [])
            destroys.append(
                draft.add(
                    DestroyDomain(
                        resource=res,
                        qualifier=ref.host if len(refs) > 1 else None,
                        host=ref.host,
                        domain=observed_domain(world.settings, ref.domain, ref.mark),
                        depends_on=tuple(sorted(deps)),
                        before=f"on {ref.host}: {domain_text(ref.domain, root)}",
                        after=None,
                        reason="not in the spec",
                    ),
                    deletes=res,
                )
            )
        if root is not None:
            draft.add(
                DeleteRoot(
                    resource=res,
                    image_name=identity.root_disk_name(name),
                    depends_on=tuple(destroys),
                    before=f"root disk {gib(root.size_bytes)}",
                    after=None,
                    reason="not in the spec",
                ),
                deletes=res,
            )
        where = ", ".join(r.host for r in refs) or "no domain"
        draft.delete_change(res, f"{where}; root disk {'yes' if root else 'no'}", "not in the spec")
