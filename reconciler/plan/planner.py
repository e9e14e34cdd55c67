"""`plan(desired, observed, settings) -> Plan`: the pure heart of volctl.

No I/O, no clock, no randomness: the same inputs always give the same plan, byte for byte.
The rules run in a fixed order, each on the results of the ones before:

1. ids: reuse the ids resources carry, allocate new ones in name order;
2. VMs: existing ones first (resizes take capacity), then new ones (placement); then the
   NICs of existing VMs (hot-plug and unplug, never a restart);
3. volumes: create, grow, refuse to shrink, reclaimPolicy;
4. attachments: detach what is not wanted where it is, then attach;
5. removals: VMs and volumes that left the spec, as deletion groups;
6. guards: hold deletion groups on partial knowledge or mass deletion;
7. finish: drop actions whose dependencies were held, order topologically.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld
from reconciler.plan import ids
from reconciler.plan.actions import DestroyDomain, Plan
from reconciler.plan.attachments import AttachmentRules, Detaches
from reconciler.plan.draft import Draft
from reconciler.plan.gcpause import collector_paused
from reconciler.plan.guard import hold_deletions
from reconciler.plan.images import Images
from reconciler.plan.nics import NicRules
from reconciler.plan.placement import Ledger
from reconciler.plan.removals import plan_removals
from reconciler.plan.settings import PlanSettings
from reconciler.plan.vms import VmRules
from reconciler.plan.volumes import VolumeRules
from reconciler.plan.world import World


def plan(desired: DesiredState, observed: ObservedWorld, settings: PlanSettings) -> Plan:
    with collector_paused():
        return _plan(desired, observed, settings)


def _plan(desired: DesiredState, observed: ObservedWorld, settings: PlanSettings) -> Plan:
    world = World.build(desired, observed, settings)
    draft = Draft()
    vmids = ids.vm_ids(world)
    volids = ids.volume_ids(world)
    draft.ids.update({f"vm/{k}": v for k, v in vmids.items()})
    draft.ids.update({f"volume/{k}": v for k, v in volids.items()})
    images = Images(world, draft)
    vms = VmRules(world, draft, Ledger.build(world), images, vmids).run()
    NicRules(draft, vms).run()
    volume_rules = VolumeRules(world, draft, vms, volids)
    vols = volume_rules.run()
    detaches = AttachmentRules(world, draft, vms, vols, volids).run()
    plan_removals(world, draft, detaches)
    volume_rules.removals(detaches.by_volume)
    _destroy_after_detach(draft, detaches)
    hold_deletions(world, draft, settings)
    return draft.finish()


def _destroy_after_detach(draft: Draft, detaches: Detaches) -> None:
    """Every domain destroy waits for the detaches planned on that domain."""
    if not detaches.by_domain:
        return
    for action_id, action in list(draft.actions.items()):
        if not isinstance(action, DestroyDomain):
            continue
        extra = detaches.by_domain.get((action.host, action.domain.name), [])
        if extra:
            deps = tuple(sorted(set(action.depends_on) | set(extra)))
            draft.actions[action_id] = replace(action, depends_on=deps)
