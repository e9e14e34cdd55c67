"""Create RBD images under a scratch name, mark them, then rename them into place.

Why: `rbd create`/`clone` and the first `metadata_set` are separate calls.  Done in place, a
crash between them leaves an *unmarked* image at a managed name (`vm-X-root`, `vol-X`,
`img-X`): volctl must treat it as foreign, and the VM or volume is blocked for good.  So every
image is born as `volctl-tmp.<final-name>.<nonce>` (`identity.TMP_PREFIX`, a reserved
namespace), gets its mark (and, for imports, its data and base snapshot), and only then is
renamed to its final name - a single atomic RADOS operation.  A crash at any point leaves
either nothing at the final name (the next pass simply creates it again) or the finished,
marked image.

Scratch images left behind by a crash are volctl's own debris, marked or not: once older than
a grace period and open by nobody (an image being written has a watcher), they are removed -
before a new attempt at the same final name, and by every `observe()`.  The grace period
covers the short windows in which a live creator holds no watcher (between create and open,
between close and rename).  Removing an image with its snapshots (`remove_image`) lives here
too: the debris sweep and `RbdStorage.remove` do it the same way.  All functions here run on
the backend's worker threads.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import rbd

from reconciler import identity


def new_name(final: str) -> str:
    return identity.tmp_image_name(final, uuid.uuid4().hex[:8])


def is_tmp(name: str) -> bool:
    return identity.tmp_image_target(name) is not None


def leftovers(io: Any, final: str) -> list[str]:
    """Scratch images made for `final` by earlier attempts."""
    return [n for n in rbd.RBD().list(io) if identity.tmp_image_target(str(n)) == final]


def age_seconds(im: Any) -> float:
    created = im.create_timestamp()
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)  # librbd reports UTC
    return float((datetime.now(UTC) - created).total_seconds())


def snapshots(im: Any) -> tuple[list[str], set[str]]:
    """An open image's snapshot names, and those of them that are protected."""
    snaps = [str(s["name"]) for s in im.list_snaps()]
    return snaps, {s for s in snaps if im.is_protected_snap(s)}


def remove_image(io: Any, name: str, snaps: list[str], protected: set[str]) -> None:
    """Remove an image and its snapshots (`snaps`, from a read-only look the caller made after
    its own checks): unprotect, remove each snapshot, then the image.  The read-write open is
    short, so the image carries our watcher only while its snapshots go."""
    if snaps:
        with rbd.Image(io, name) as im:
            for snap in snaps:
                if snap in protected:
                    im.unprotect_snap(snap)
                im.remove_snap(snap)
    rbd.RBD().remove(io, name)


def remove_debris(io: Any, name: str, grace: float) -> bool:
    """Remove one scratch image if nobody has it open and it is older than `grace`."""
    if not is_tmp(name):
        return False  # never anything outside the reserved namespace
    try:
        with rbd.Image(io, name, read_only=True) as im:
            if list(im.watchers_list()) or age_seconds(im) < grace:
                return False
            snaps, protected = snapshots(im)
        remove_image(io, name, snaps, protected)
    except rbd.ImageNotFound:
        return False
    return True


def sweep(io: Any, names: Iterable[str], grace: float) -> list[str]:
    """Best effort: remove the debris among `names`; returns what was removed."""
    removed = []
    for name in names:
        with contextlib.suppress(rbd.Error):
            if remove_debris(io, name, grace):
                removed.append(name)
    return removed


def publish(io: Any, tmp: str, final: str) -> bool:
    """Rename the finished scratch image to its final name.  False (and the scratch image is
    removed) when something already holds the final name."""
    try:
        rbd.RBD().rename(io, tmp, final)
    except rbd.ImageExists:
        with contextlib.suppress(rbd.Error):
            remove_debris(io, tmp, 0.0)
        return False
    return True
