"""Rules for attachments: detach what the spec no longer wants, then attach what it wants.

Where a volume is attached is learned from the live disks of the domains on reachable hosts.
A disk that is live but gone from the persistent config is *detaching* (a detach was
requested and the guest has not let go yet): it is never attached anywhere until it is
gone, and its detach is planned again on every pass (with the executor's backoff), because
a virtio unplug request that reaches a guest which is still booting is silently lost and
re-issuing it is harmless.  The one exception is a domain this plan destroys anyway:
destroying it frees the disk, and waiting for a guest that may never answer would stall the
deletion.  Moving a volume is a DETACH on the old domain and an ATTACH on the new one that
depends on it; the executor runs the attach only after the detach is complete.  Disks of
foreign domains are never touched; a volume attached to one cannot be attached by volctl.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler import identity
from reconciler.model import ReclaimPolicy, VolumeAttachment
from reconciler.observe.types import OwnerMark
from reconciler.payload import DiskBus, DiskSpec, DomainSpec
from reconciler.plan.actions import AttachVolume, ChangeOp, DestroyDomain, DetachVolume
from reconciler.plan.draft import Draft
from reconciler.plan.reasons import BlockReason
from reconciler.plan.specs import observed_domain
from reconciler.plan.vms import VmInfo
from reconciler.plan.volumes import VolInfo
from reconciler.plan.world import DiskRef, World

R = BlockReason


@dataclass
class Detaches:
    by_domain: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (host, dom)
    by_volume: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Ready:
    """An attachment whose volume and VM can be used: what its attach is built from."""

    att: VolumeAttachment
    vol: VolInfo
    vm: VmInfo
    host: str  # the VM's host
    spec: DomainSpec  # the VM's desired domain
    refs: list[DiskRef]  # where the volume is attached now


@dataclass
class AttachmentRules:
    world: World
    draft: Draft
    vms: dict[str, VmInfo]
    vols: dict[str, VolInfo]
    volids: dict[str, int]
    detaches: Detaches = field(default_factory=Detaches)
    planned_targets: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    _destroys: set[tuple[str, str]] | None = None  # (host, domain) destroyed by VM rules

    def run(self) -> Detaches:
        self._detach_all()
        atts = self.world.desired.attachments
        for key in sorted(atts, key=lambda k: (atts[k].vm, k)):
            self._attach(atts[key])
        return self.detaches

    # --- detach ------------------------------------------------------------------------------

    def _detach_all(self) -> None:
        w = self.world
        for vol in sorted(w.volumes):
            refs = w.disks_of(identity.volume_image_name(vol))
            for ref in sorted(refs, key=lambda r: (w.host_order[r.host], r.domain.name)):
                mark = ref.domain.mark
                if mark is None:
                    continue  # foreign: never touched
                if ref.disk.persistent:
                    if not self._wanted_here(vol, ref):
                        self._detach(vol, ref, mark)
                elif not self._destroyed(ref):
                    self._detach(vol, ref, mark)  # detaching: ask again, the request may be lost

    def _destroyed(self, ref: DiskRef) -> bool:
        """The plan destroys this domain (VM left the spec, duplicate, replace)."""
        mark = ref.domain.mark
        if mark is not None and mark.name not in self.world.desired.vms:
            return True
        if self._destroys is None:
            self._destroys = {
                (a.host, a.domain.name)
                for a in self.draft.actions.values()
                if isinstance(a, DestroyDomain)
            }
        return (ref.host, ref.domain.name) in self._destroys

    def _wanted_here(self, vol: str, ref: DiskRef) -> bool:
        att = self.world.attachment_of.get(vol)
        mark = ref.domain.mark
        if att is None or mark is None or att.vm != mark.name or vol not in self.vols:
            return False
        info = self.vms.get(att.vm)
        kept = info.kept if info is not None else None
        return kept is not None and kept.host == ref.host and kept.domain.name == ref.domain.name

    def _detach(self, vol: str, ref: DiskRef, mark: OwnerMark) -> None:
        w = self.world
        res = f"volume/{vol}"
        deletes = None
        if mark.name not in w.desired.vms:
            deletes = f"vm/{mark.name}"  # part of deleting that VM: held with it
        elif vol not in w.desired.volumes and w.volumes[vol].meta.get(identity.META_RECLAIM) == (
            ReclaimPolicy.DELETE.value
        ):
            deletes = res
        where = f"{ref.domain.name} on {ref.host} as {ref.disk.target}"
        state = "attached to" if ref.disk.persistent else "detaching from"
        action_id = self.draft.add(
            DetachVolume(
                resource=res,
                qualifier=f"{ref.host}/{ref.domain.name}",
                host=ref.host,
                domain=observed_domain(w.settings, ref.domain, mark),
                disk=DiskSpec(
                    rbd_image=ref.disk.rbd_image or w.settings.rbd(identity.volume_image_name(vol)),
                    target=ref.disk.target,
                    serial=ref.disk.serial or "",
                    ceph=w.settings.ceph,
                ),
                before=f"{state} {where}",
                after="detached",
                reason="not attached there in the spec"
                if ref.disk.persistent
                else "detach requested earlier, still live: asking again",
            ),
            deletes=deletes,
        )
        self.detaches.by_domain.setdefault((ref.host, ref.domain.name), []).append(action_id)
        self.detaches.by_volume.setdefault(vol, []).append(action_id)
        if deletes is None:
            self.draft.change(res, ChangeOp.UPDATE, f"{state} {where}", "detached")

    # --- attach ------------------------------------------------------------------------------

    def _block(self, att: VolumeAttachment, reason: BlockReason, message: str) -> None:
        self.draft.block(f"attachment/{att.meta.name}", reason, message)

    def _attach(self, att: VolumeAttachment) -> None:
        """Attach the volume where the spec wants it, unless it is there or cannot be yet."""
        ready = self._ready(att)
        if isinstance(ready, tuple):
            self._block(att, *ready)
            return
        if ready is None:
            return  # attached where the spec wants it
        key = (ready.host, ready.spec.name)
        used = ready.vm.targets | self.planned_targets.setdefault(key, set())
        bus = DiskBus(self.world.desired.volumes[ready.att.volume].bus)
        target = next((t for t in self.world.targets[bus] if t not in used), None)
        if target is None:
            self._block(att, R.NO_FREE_TARGET, f"{ready.spec.name} has no free disk target")
            return
        self.planned_targets[key].add(target)
        self._add_attach(ready, target, bus)

    def _ready(self, att: VolumeAttachment) -> _Ready | tuple[BlockReason, str] | None:
        """What an attach is built from; else why it is blocked; None when nothing is to do."""
        w, vol = self.world, att.volume
        if vol not in w.desired.volumes or att.vm not in w.desired.vms:
            return R.INVALID_SPEC, f"volume {vol} or VM {att.vm} is not in the spec"
        first = w.attachment_of.get(vol)
        if first is not None and first.meta.name != att.meta.name:
            return R.INVALID_SPEC, f"volume {vol} is attached by {first.meta.name}"
        if not w.storage_ok:
            return R.STORAGE_UNKNOWN, "storage unreachable"
        vinfo = self.vols.get(vol)
        minfo = self.vms[att.vm]
        refs = w.disks_of(identity.volume_image_name(vol))
        here = [r for r in refs if self._wanted_here(vol, r)]
        if here and here[0].disk.persistent and not minfo.fresh:
            return None
        in_use = self._in_use(vol, refs)
        if in_use is not None:
            return in_use
        if vinfo is None or vinfo.blocked is not None:
            return R.VOLUME_NOT_READY, f"volume/{vol}: {vinfo.blocked if vinfo else ''}"
        if minfo.blocked is not None or minfo.host is None or minfo.spec is None:
            why = f"{minfo.blocked.reason}: {minfo.blocked.message}" if minfo.blocked else ""
            return R.VM_NOT_READY, f"vm/{att.vm}: {why}"
        img = w.volumes.get(vol)
        if w.unknown and img is not None and not refs and img.watchers:
            return (
                R.HOST_UNKNOWN,
                f"{vol} is open by a client volctl cannot see (watchers: "
                f"{', '.join(img.watchers)}) while host(s) {w.unknown_text()} are unreachable",
            )
        return _Ready(att, vinfo, minfo, minfo.host, minfo.spec, refs)

    @staticmethod
    def _in_use(vol: str, refs: list[DiskRef]) -> tuple[BlockReason, str] | None:
        """A volume still leaving a domain, or held by a foreign one, cannot be attached."""
        pending = [r for r in refs if not r.disk.persistent]
        if pending:
            return R.DETACHING, f"{vol} is still detaching from {pending[0].domain.name}"
        foreign = [r for r in refs if r.domain.mark is None]
        if foreign:
            return R.VOLUME_IN_USE, f"{vol} is attached to foreign domain {foreign[0].domain.name}"
        return None

    def _add_attach(self, ready: _Ready, target: str, bus: DiskBus) -> None:
        """The attach (after the volume's create/resize, its detaches and the VM's lifecycle)."""
        w, att, vol = self.world, ready.att, ready.att.volume
        deps = [d for d in (ready.vol.create, ready.vol.resize) if d is not None]
        deps += self.detaches.by_volume.get(vol, [])
        deps += ready.vm.ready
        moved = [r for r in ready.refs if r.domain.mark is not None]
        before = f"attached to {moved[0].domain.name}" if moved else None
        res = f"attachment/{att.meta.name}"
        self.draft.add(
            AttachVolume(
                resource=res,
                host=ready.host,
                domain=ready.spec,
                disk=DiskSpec(
                    rbd_image=w.settings.rbd(identity.volume_image_name(vol)),
                    target=target,
                    serial=f"vol-{self.volids[vol]}",
                    ceph=w.settings.ceph,
                    bus=bus,
                ),
                depends_on=tuple(sorted(set(deps))),
                before=before,
                after=f"{vol} on {att.vm} as {target}",
                reason="moved" if moved else "attach",
            )
        )
        op = ChangeOp.UPDATE if moved else ChangeOp.CREATE
        self.draft.change(res, op, before, f"{vol} on {att.vm} ({ready.host}) as {target}")
