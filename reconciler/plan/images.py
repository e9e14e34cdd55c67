"""Where a VM's root disk is cloned from, and importing path-sourced images on first use.

An Image with a `path` or an `ssh` source becomes RBD image `img-<name>` with the protected
snapshot `volctl-base`; it is imported only when some VM of this plan needs a clone of it,
never ahead of time.  An Image with an `rbd` source (`pool/image@snap`) is used as it is; if
that snapshot does not exist, VMs that need it are blocked ("ImageMissing").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler import identity
from reconciler.model import Image
from reconciler.payload import ImageFile, LocalFile, SshFile
from reconciler.plan.actions import ChangeOp, ImportImage
from reconciler.plan.draft import Draft
from reconciler.plan.reasons import BlockReason
from reconciler.plan.world import World

IMPORTED_KIND = "image"


@dataclass(frozen=True)
class Source:
    """Where a root disk is cloned from."""

    parent: str  # "pool/image@snap" to clone from
    size_bytes: int | None = None  # size of the parent, if known
    dep: str | None = None  # IMPORT_IMAGE action the clone must wait for


@dataclass(frozen=True)
class NoSource:
    """Why there is no usable clone source (the VMs that need it are blocked with this)."""

    reason: BlockReason
    message: str


def parent_of(world: World, image: Image) -> str:
    if image.source.rbd is not None:
        return image.source.rbd
    name = identity.base_image_name(image.meta.name)
    return f"{world.settings.rbd(name)}@{identity.BASE_SNAPSHOT}"


def image_hash(image: Image) -> str:
    fields: dict[str, object] = {"id": image.id, "path": image.source.path, "rbd": image.source.rbd}
    if image.source.ssh is not None:  # only when set: hashes of path/rbd images stay as they were
        fields["ssh"] = str(image.source.ssh)
    return identity.spec_hash(fields)


def import_file(image: Image) -> ImageFile | None:
    """What an ImportImage of this image reads: its local file or its file over SSH."""
    ssh = image.source.ssh
    if ssh is not None:
        return SshFile(ssh.host, ssh.path, ssh.port, ssh.identity_file, ssh.known_hosts_file)
    return LocalFile(image.source.path) if image.source.path is not None else None


@dataclass
class Images:
    world: World
    draft: Draft
    _memo: dict[str, Source | NoSource] = field(default_factory=dict)

    def ensure(self, name: str, *, plan_import: bool = True) -> Source | NoSource:
        """A clone source for image `name`, planning its import if that is still needed.

        With plan_import=False it only says whether a clone source can exist (no action).
        """
        if name in self._memo:
            return self._memo[name]
        src = self._resolve(name, plan_import=plan_import)
        if plan_import:
            self._memo[name] = src
        return src

    def _resolve(self, name: str, *, plan_import: bool) -> Source | NoSource:
        image = self.world.desired.images.get(name)
        if image is None:
            return NoSource(BlockReason.INVALID_SPEC, f"image {name} is not in the spec")
        parent = parent_of(self.world, image)
        if image.source.rbd is not None:
            return self._external(parent)
        img_name = identity.base_image_name(name)
        obs = self.world.image(img_name)
        if obs is not None:
            if not (
                obs.ours
                and obs.meta.get(identity.META_KIND) == IMPORTED_KIND
                and obs.meta.get(identity.META_NAME) == name
            ):
                return NoSource(
                    BlockReason.IMAGE_CONFLICT,
                    f"RBD image {img_name} exists and is not volctl's image {name}",
                )
            if (
                identity.BASE_SNAPSHOT in obs.snapshots
                and identity.BASE_SNAPSHOT in obs.protected_snapshots
            ):
                return Source(parent, size_bytes=obs.size_bytes)
        source = import_file(image)
        if source is None:
            return NoSource(BlockReason.INVALID_SPEC, f"image {name} has no source")
        if not plan_import:
            return Source(parent)
        meta = (
            (identity.META_MANAGED_BY, identity.MANAGED_BY),
            (identity.META_KIND, IMPORTED_KIND),
            (identity.META_NAME, name),
            (identity.META_ID, str(image.id)),
            (identity.META_SPEC_HASH, image_hash(image)),
        )
        resource = f"image/{name}"
        action_id = self.draft.add(
            ImportImage(
                resource=resource,
                before=None
                if obs is None
                else f"{img_name} without snapshot {identity.BASE_SNAPSHOT}",
                after=f"{img_name}@{identity.BASE_SNAPSHOT} from {source}",
                reason="first use by a VM",
                image_name=img_name,
                source=source,
                meta=meta,
            )
        )
        self.draft.change(resource, ChangeOp.CREATE, None, f"{img_name} from {source}")
        return Source(parent, dep=action_id)

    def _external(self, parent: str) -> Source | NoSource:
        storage = self.world.observed.storage
        exists = storage.external_snapshots.get(parent)
        size = None
        pool, _, rest = parent.partition("/")
        img_name, _, snap = rest.partition("@")
        if pool == self.world.settings.pool:
            obs = storage.images.get(img_name)
            if obs is not None:
                size = obs.size_bytes
                if exists is None:
                    exists = snap in obs.snapshots
        if not exists:
            return NoSource(BlockReason.IMAGE_MISSING, f"snapshot {parent} does not exist in Ceph")
        return Source(parent, size_bytes=size)
