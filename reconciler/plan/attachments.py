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
from reconciler.payload import DiskSpec
from reconciler.plan.actions import ActionKind, ChangeOp
from reconciler.plan.draft import Draft
from reconciler.plan.specs import act, observed_domain
from reconciler.plan.vms import VmInfo
from reconciler.plan.volumes import VolInfo
from reconciler.plan.world import DiskRef, World

K = ActionKind


@dataclass
class Detaches:
    by_domain: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (host, dom)
    by_volume: dict[str, list[str]] = field(default_factory=dict)


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
                        self._detach(vol, ref)
                elif not self._destroyed(ref):
                    self._detach(vol, ref)  # detaching: ask again, the request may be lost

    def _destroyed(self, ref: DiskRef) -> bool:
        """The plan destroys this domain (VM left the spec, duplicate, replace)."""
        mark = ref.domain.mark
        if mark is not None and mark.name not in self.world.desired.vms:
            return True
        if self._destroys is None:
            self._destroys = {
                (a.host, a.domain.name)
                for a in self.draft.actions.values()
                if a.kind == K.DESTROY_DOMAIN and a.host is not None and a.domain is not None
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

    def _detach(self, vol: str, ref: DiskRef) -> None:
        w = self.world
        mark = ref.domain.mark
        assert mark is not None
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
            act(
                K.DETACH_VOLUME,
                res,
                f"{ref.host}/{ref.domain.name}",
                host=ref.host,
                domain=observed_domain(w.settings, ref.domain),
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

    def _block(self, att: VolumeAttachment, reason: str, message: str) -> None:
        self.draft.block(f"attachment/{att.meta.name}", reason, message)

    def _attach(self, att: VolumeAttachment) -> None:
        w = self.world
        name = att.meta.name
        vol = att.volume
        if vol not in w.desired.volumes or att.vm not in w.desired.vms:
            self._block(att, "InvalidSpec", f"volume {vol} or VM {att.vm} is not in the spec")
            return
        first = w.attachment_of.get(vol)
        if first is not None and first.meta.name != name:
            self._block(att, "InvalidSpec", f"volume {vol} is attached by {first.meta.name}")
            return
        if not w.storage_ok:
            self._block(att, "StorageUnknown", "storage unreachable")
            return
        vinfo = self.vols.get(vol)
        minfo = self.vms[att.vm]
        refs = w.disks_of(identity.volume_image_name(vol))
        here = [r for r in refs if self._wanted_here(vol, r)]
        if here and here[0].disk.persistent and not minfo.fresh:
            return  # attached where the spec wants it
        pending = [r for r in refs if not r.disk.persistent]
        if pending:
            p = pending[0]
            self._block(att, "Detaching", f"{vol} is still detaching from {p.domain.name}")
            return
        foreign = [r for r in refs if r.domain.mark is None]
        if foreign:
            f = foreign[0]
            self._block(att, "VolumeInUse", f"{vol} is attached to foreign domain {f.domain.name}")
            return
        if vinfo is None or vinfo.blocked is not None:
            self._block(att, "VolumeNotReady", f"volume/{vol}: {vinfo.blocked if vinfo else ''}")
            return
        if minfo.blocked is not None or minfo.host is None or minfo.spec is None:
            why = f"{minfo.blocked.reason}: {minfo.blocked.message}" if minfo.blocked else ""
            self._block(att, "VMNotReady", f"vm/{att.vm}: {why}")
            return
        img = w.volumes.get(vol)
        if w.unknown and img is not None and not refs and img.watchers:
            self._block(
                att,
                "HostUnknown",
                f"{vol} is open by a client volctl cannot see (watchers: "
                f"{', '.join(img.watchers)}) while host(s) {w.unknown_text()} are unreachable",
            )
            return
        key = (minfo.host, minfo.spec.name)
        used = minfo.targets | self.planned_targets.setdefault(key, set())
        target = next((t for t in w.settings.targets() if t not in used), None)
        if target is None:
            self._block(att, "NoFreeTarget", f"{minfo.spec.name} has no free disk target")
            return
        self.planned_targets[key].add(target)
        deps = [d for d in (vinfo.create, vinfo.resize) if d is not None]
        deps += self.detaches.by_volume.get(vol, [])
        deps += minfo.ready
        moved = [r for r in refs if r.domain.mark is not None]
        before = f"attached to {moved[0].domain.name}" if moved else None
        res = f"attachment/{name}"
        self.draft.add(
            act(
                K.ATTACH_VOLUME,
                res,
                host=minfo.host,
                domain=minfo.spec,
                disk=DiskSpec(
                    rbd_image=w.settings.rbd(identity.volume_image_name(vol)),
                    target=target,
                    serial=f"vol-{self.volids[vol]}",
                    ceph=w.settings.ceph,
                ),
                depends_on=tuple(sorted(set(deps))),
                before=before,
                after=f"{vol} on {att.vm} as {target}",
                reason="moved" if moved else "attach",
            )
        )
        op = ChangeOp.UPDATE if moved else ChangeOp.CREATE
        self.draft.change(res, op, before, f"{vol} on {att.vm} ({minfo.host}) as {target}")
