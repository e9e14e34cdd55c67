"""Deterministic identities and ownership marks.

Actual state is the truth: whether a libvirt domain or an RBD image belongs to volctl, its
integer id and the hash of the spec it was made from are stored *on the resource*, never in
a local database.  This module is the single place that says what those marks look like and
how names map to domain and image names, so planner, backends and status agree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# libvirt <metadata> namespace owned by this project.
XMLNS = "https://volctl.io/xmlns/vm/1"
XMLNS_PREFIX = "volctl"

# RBD image-meta keys.
META_MANAGED_BY = "volctl.managed-by"
MANAGED_BY = "volctl"
META_KIND = "volctl.kind"  # "image" | "root" | "volume"
META_NAME = "volctl.name"  # the volctl resource name
META_ID = "volctl.id"  # image id, vmid (root disks) or volumeid
META_SPEC_HASH = "volctl.spec-hash"
META_RECLAIM = "volctl.reclaim-policy"
META_EPOCH = "volctl.epoch"  # lease epoch of the HA leader that created/marked it
META_INSTALLATION = "volctl.installation"  # the installation that created/marked it

BASE_SNAPSHOT = "volctl-base"


def base_image_name(image: str) -> str:
    return f"img-{image}"


def root_disk_name(vm: str) -> str:
    return f"vm-{vm}-root"


def volume_image_name(volume: str) -> str:
    return f"vol-{volume}"


# Reserved RBD names: volctl creates every image under `volctl-tmp.<final-name>.<nonce>`,
# marks it, then renames it to its final name (atomic), so a crash never leaves an unmarked
# image at a managed name.  Anything with this prefix is volctl's own scratch (or crash
# debris) and is never a volume, root disk or base image.
TMP_PREFIX = "volctl-tmp."


def tmp_image_name(final: str, nonce: str) -> str:
    return f"{TMP_PREFIX}{final}.{nonce}"


def tmp_image_target(name: str) -> str | None:
    """The final name a temporary image was made for, or None for any other name."""
    if not name.startswith(TMP_PREFIX):
        return None
    final, sep, nonce = name[len(TMP_PREFIX) :].rpartition(".")
    return final if sep and final and nonce else None


def domain_name(vm: str) -> str:
    return vm


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Short, stable hash of the fields that define a resource (canonical JSON)."""
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- which installation owns a resource ----------------------------------------------------
#
# Several volctl installations may share libvirt hosts (and, with explicit names, a pool).
# A mark that only says "volctl" would make each treat the others' domains as its own
# orphans, so every mark also names the installation that made it.  The default name is
# the Ceph cluster's fsid and the pool ("<fsid>/<pool>"): it needs no configuration, every
# HA replica of one installation computes the same one, and two installations in one pool
# could not coexist anyway (they would collide on image names).  `installation: NAME` in
# the config overrides it.

INSTALLATION_NAME = r"^[A-Za-z0-9]([A-Za-z0-9_.:/-]{0,126}[A-Za-z0-9])?$"


def default_installation(fsid: str, pool: str) -> str:
    return f"{fsid}/{pool}"


@dataclass(frozen=True)
class Installation:
    """This installation: the name its marks carry and the RBD pool it keeps images in."""

    name: str
    pool: str

    def owns(self, marked_by: str | None, rbd_disks: Iterable[str | None]) -> bool:
        """Whether a volctl mark naming `marked_by` (None: a mark from before installations
        were named) is ours.  A legacy mark is ours only if the domain has RBD disks and
        every one of them is in our pool ("pool/image"): another installation's domains
        live in its own pool.  Any other installation's mark is foreign."""
        if marked_by is not None:
            return marked_by == self.name
        images = [d for d in rbd_disks if d is not None]
        return bool(images) and all(d.rsplit("/", 1)[0] == self.pool for d in images)
