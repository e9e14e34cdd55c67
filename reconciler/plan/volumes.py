"""Rules for volumes: create, grow online, refuse to shrink, keep reclaimPolicy in image-meta,
and delete a volume that left the spec only when its *recorded* policy is Delete.

The recorded policy (image-meta `volctl.reclaim-policy`) is what counts at deletion time,
not the spec: the volume is no longer in the spec when it is deleted.  A volume that left
the spec with any other policy is kept and reported in `Plan.released`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler import identity
from reconciler.model import ReclaimPolicy, Volume
from reconciler.observe.types import ObservedImage
from reconciler.payload import DomainSpec
from reconciler.plan.actions import (
    ChangeOp,
    CreateVolume,
    DeleteVolume,
    ResizeVolume,
    SetVolumeMeta,
)
from reconciler.plan.draft import Draft
from reconciler.plan.reasons import BlockReason
from reconciler.plan.specs import GIB, gib, volume_hash, volume_meta
from reconciler.plan.vms import VmInfo
from reconciler.plan.world import DiskRef, World

R = BlockReason


@dataclass
class VolInfo:
    create: str | None = None  # CREATE_VOLUME id
    resize: str | None = None  # RESIZE_VOLUME id
    blocked: str | None = None  # "Reason: message" when the volume cannot be used


@dataclass
class VolumeRules:
    world: World
    draft: Draft
    vms: dict[str, VmInfo]
    volids: dict[str, int]
    infos: dict[str, VolInfo] = field(default_factory=dict)

    def run(self) -> dict[str, VolInfo]:
        for name in sorted(self.world.desired.volumes):
            self.infos[name] = self._desired(self.world.desired.volumes[name])
        return self.infos

    def _block(self, name: str, reason: BlockReason, message: str) -> VolInfo:
        self.draft.block(f"volume/{name}", reason, message)
        return VolInfo(blocked=f"{reason}: {message}")

    def _desired(self, vol: Volume) -> VolInfo:
        """Create a missing volume; else grow it and keep its recorded reclaimPolicy true."""
        w = self.world
        name = vol.meta.name
        img_name = identity.volume_image_name(name)
        if not w.storage_ok:
            return self._block(name, R.STORAGE_UNKNOWN, f"storage unreachable: {_why(w)}")
        img = w.volumes.get(name)
        if img is None:
            if w.image(img_name) is not None:
                return self._block(name, R.NAME_CONFLICT, f"RBD image {img_name} is not ours")
            return self._create(vol)
        info = VolInfo(resize=self._resize(vol, img))
        recorded = img.meta.get(identity.META_RECLAIM)
        if recorded != vol.reclaim_policy.value:
            self._set_policy(vol, recorded)
        return info

    def _create(self, vol: Volume) -> VolInfo:
        name = vol.meta.name
        res = f"volume/{name}"
        create = self.draft.add(
            CreateVolume(
                resource=res,
                image_name=identity.volume_image_name(name),
                size_bytes=vol.size * GIB,
                meta=volume_meta(vol, self.volids[name]),
                after=f"{vol.size} GiB, reclaimPolicy {vol.reclaim_policy.value}",
                reason="volume created",
            )
        )
        self.draft.change(res, ChangeOp.CREATE, None, f"{vol.size} GiB")
        return VolInfo(create=create)

    def _resize(self, vol: Volume, img: ObservedImage) -> str | None:
        """Grow (online when attached to a running VM); refuse to shrink. The resize id."""
        name = vol.meta.name
        res = f"volume/{name}"
        want = vol.size * GIB
        if want < img.size_bytes:
            self.draft.block(
                res,
                R.SHRINK_REFUSED,
                f"volume is {gib(img.size_bytes)}, the spec asks for {vol.size} GiB; "
                "shrinking is refused (nothing is done)",
            )
            return None
        if want == img.size_bytes:
            return None
        host, dom = self._live_attachment(name)
        resize = self.draft.add(
            ResizeVolume(
                resource=res,
                image_name=identity.volume_image_name(name),
                size_bytes=want,
                host=host,
                domain=dom,
                before=gib(img.size_bytes),
                after=f"{vol.size} GiB",
                reason="grown online" if host else "grown",
            )
        )
        self.draft.change(res, ChangeOp.UPDATE, gib(img.size_bytes), f"{vol.size} GiB")
        return resize

    def _set_policy(self, vol: Volume, recorded: str | None) -> None:
        """Record a changed reclaimPolicy in image-meta (it decides at deletion time)."""
        res = f"volume/{vol.meta.name}"
        policy = vol.reclaim_policy.value
        self.draft.add(
            SetVolumeMeta(
                resource=res,
                image_name=identity.volume_image_name(vol.meta.name),
                meta=(
                    (identity.META_RECLAIM, policy),
                    (identity.META_SPEC_HASH, volume_hash(vol)),
                ),
                before=f"reclaimPolicy {recorded}",
                after=f"reclaimPolicy {policy}",
                reason="reclaimPolicy changed",
            )
        )
        self.draft.change(res, ChangeOp.UPDATE, f"reclaimPolicy {recorded}", policy)

    def _live_attachment(self, name: str) -> tuple[str | None, DomainSpec | None]:
        """(host, DomainSpec) when the volume stays attached to a running domain of its VM."""
        att = self.world.attachment_of.get(name)
        info = self.vms.get(att.vm) if att else None
        if info is None or info.kept is None or info.fresh or not info.running_stable:
            return None, None
        for ref in self.world.disks_of(identity.volume_image_name(name)):
            if _same(ref, info) and ref.disk.persistent:
                return info.kept.host, info.spec
        return None, None

    # --- volumes that left the spec -------------------------------------------------------

    def removals(self, detaches: dict[str, list[str]]) -> None:
        w = self.world
        for name in sorted(w.volumes):
            if name in w.desired.volumes:
                continue
            res = f"volume/{name}"
            img = w.volumes[name]
            if img.meta.get(identity.META_RECLAIM) != ReclaimPolicy.DELETE.value:
                self.draft.released.append(res)
                continue
            refs = w.disks_of(identity.volume_image_name(name))
            foreign = [r for r in refs if r.domain.mark is None]
            if foreign:
                self.draft.block(
                    res, R.VOLUME_IN_USE, f"attached to foreign domain {foreign[0].domain.name}"
                )
                continue
            pending = [r for r in refs if not r.disk.persistent]
            if pending:
                self.draft.block(res, R.DETACHING, f"still detaching from {pending[0].domain.name}")
                continue
            self.draft.add(
                DeleteVolume(
                    resource=res,
                    image_name=identity.volume_image_name(name),
                    depends_on=tuple(sorted(detaches.get(name, []))),
                    before=gib(img.size_bytes),
                    after=None,
                    reason="not in the spec; reclaimPolicy Delete",
                ),
                deletes=res,
            )
            self.draft.delete_change(res, gib(img.size_bytes), "reclaimPolicy Delete")


def _same(ref: DiskRef, info: VmInfo) -> bool:
    kept = info.kept
    return kept is not None and ref.host == kept.host and ref.domain.name == kept.domain.name


def _why(world: World) -> str:
    return world.observed.storage.reason or "unreachable"
