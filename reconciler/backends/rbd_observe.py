"""What the RBD observe reads on a pass, and what it may take from the previous one.

Why: the pool of a datacenter holds thousands of images, and opening each one on every pass
(librbd open, size, watchers: about ten RADOS round trips an image) made the Ceph side of a
steady-state pass O(images): seconds at 81 images, minutes at 10,000.  A steady-state pass
now costs a constant number of Ceph calls plus one read per image that changed:

- **Which images exist**: `rbd_directory`'s object version, one `stat`.  librbd changes that
  object on every create, clone, remove, rename and trash move, so an unchanged version
  means an unchanged listing; only a changed one is listed again (`list2`).
- **What changed on an image** (size, image-meta, snapshots, parent): the header watches of
  `rbd_watch.py` on the images that a running domain holds.  A notify marks the image
  dirty; the next pass reads it again.
- **Watchers** (clients that have an image open): Ceph tells nobody when a watcher comes, so
  they are read for every image whose attachment is *in doubt*: every managed image that no
  running domain on a reachable host holds (`held`, given by the observer from the domains
  it saw), and an image whose holders changed.  That is where the planner asks about
  watchers ("open by a client volctl cannot see"); an image a running domain holds has its
  qemu's watcher, and its watchers are those of its last read.
- **Foreign images** are read once when they appear (volctl never touches them; the planner
  needs their names), and again when the listing says they were renamed.

Every image that is read is read whole (open read-only, size, watchers without our own
watch, image-meta, parent, snapshots), so an image in doubt also shows an out-of-band
image-meta edit or resize at once.  `Calls` counts every librados/librbd call by kind, for
the pass log, the benchmarks and the test that a steady pass does not grow with the pool.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rados
import rbd

from reconciler.backends.rbd_watch import HeaderWatches
from reconciler.identity import MANAGED_BY, META_MANAGED_BY
from reconciler.observe.types import ObservedImage

DIRECTORY = "rbd_directory"


class Calls:
    """librados/librbd calls by kind ("open", "watchers", "stat", ...), thread-safe.

    A call is one library call at the binding: an image open is one call (librbd makes
    several RADOS round trips inside it), a `list2` is one call (one omap read per 1,024
    images).  `child()` makes a counter for one observation that also counts here."""

    def __init__(self, parent: Calls | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._parent = parent

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._counts[kind] += n
        if self._parent is not None:
            self._parent.add(kind, n)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def child(self) -> Calls:
        return Calls(self)


@dataclass(frozen=True)
class Static:
    """What changes on an image only through a header update (so a notify on a watched
    image): image-meta, parent, snapshots."""

    name: str
    meta: Mapping[str, str]
    parent: str | None
    snapshots: tuple[str, ...]
    protected: tuple[str, ...]

    @property
    def ours(self) -> bool:
        return self.meta.get(META_MANAGED_BY) == MANAGED_BY


@dataclass(frozen=True)
class Entry:
    """An image as last read, and the holders it was read under (None: no running domain)."""

    image: ObservedImage
    image_id: str
    ours: bool
    holders: str | None


class Listing:
    """The pool's image listing, re-read only when `rbd_directory`'s version moved."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.images: list[tuple[str, str]] = []  # (name, id), scratch images included

    def refresh(self, io: Any, calls: Calls) -> bool:
        """Stat the directory on IO (an ioctx used by nobody else: its last version is
        ours); list again if it changed.  True when it was listed again."""
        calls.add("stat")
        try:
            io.stat(DIRECTORY)
            version: int | None = int(io.get_last_version())
        except rados.ObjectNotFound:  # a pool where no image was ever created
            version = 0
        if version == self.version and version:
            return False
        calls.add("list")
        self.images = [(str(e["name"]), str(e["id"])) for e in rbd.RBD().list2(io)]
        self.version = version
        return True


def read_static(im: Any, name: str, calls: Calls) -> Static:
    calls.add("metadata_list")
    meta = {str(k): str(v) for k, v in im.metadata_list()}
    calls.add("parent")
    try:
        p = im.get_parent_image_spec()
        parent: str | None = f"{p['pool_name']}/{p['image_name']}@{p['snap_name']}"
    except rbd.ImageNotFound:
        parent = None
    calls.add("list_snaps")
    snaps = tuple(str(s["name"]) for s in im.list_snaps())
    calls.add("is_protected_snap", len(snaps))
    protected = tuple(s for s in snaps if im.is_protected_snap(s))
    return Static(name, meta, parent, snaps, protected)


def read_image(
    io: Any,
    name: str,
    image_id: str,
    *,
    watches: HeaderWatches,
    watch: bool,
    calls: Calls,
) -> tuple[ObservedImage, Static] | None:
    """Read one image whole; None if it is gone.  With WATCH the header is watched first
    (so no change after this read is missed); without, any watch of ours is dropped (so it
    never keeps an operator's `rbd rm` from working)."""
    if watch:
        if watches.ensure(io, image_id):
            calls.add("watch")
    elif watches.drop(image_id):
        calls.add("unwatch")
    watches.mark_read(image_id)
    calls.add("open")
    try:
        with rbd.Image(io, name, read_only=True) as im:
            calls.add("size")
            size = int(im.size())
            calls.add("watchers")
            watchers = tuple(
                sorted(str(w["addr"]) for w in im.watchers_list() if w["id"] != watches.own_id)
            )
            static = read_static(im, name, calls)
    except rbd.ImageNotFound:
        if watches.drop(image_id):
            calls.add("unwatch")
        return None  # removed between the listing and the open
    image = ObservedImage(
        name=name,
        size_bytes=size,
        meta=dict(static.meta),
        parent=static.parent,
        snapshots=static.snapshots,
        protected_snapshots=static.protected,
        watchers=watchers,
    )
    return image, static


class PoolCache:
    """The images as last read, the watches, and the listing: what a pass may reuse.

    Methods taking an ioctx run on the backend's worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.listing = Listing()
        self.watches = HeaderWatches()
        self._entries: dict[str, Entry] = {}  # image id -> the image as last read

    def reset(self) -> list[Any]:
        """The connection was dropped: nothing read through it is trusted any more.  Returns
        its watches, for the caller to close with the handle (HeaderWatches.forget)."""
        with self._lock:
            self.listing = Listing()
            self._entries = {}
        return self.watches.forget()

    def forget(self, name: str) -> None:
        """We change this image: read it whole at the next observe."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v.image.name != name}

    def cached(self, name: str, image_id: str, holders: str | None) -> ObservedImage | None:
        """The image as last read, if nothing says it changed: a foreign image (read once),
        or one of ours held by the same running domains, watched and not notified since."""
        with self._lock:
            entry = self._entries.get(image_id)
        if entry is None or entry.image.name != name:
            return None
        if not entry.ours:
            return entry.image
        if holders is not None and entry.holders == holders and self.watches.clean(image_id):
            return entry.image
        return None

    def read(
        self, io: Any, name: str, image_id: str, holders: str | None, calls: Calls
    ) -> ObservedImage | None:
        """Read one image whole (`read_image`), watching it if a running domain holds it
        (a new image too: qemu's watch is there anyway) and it is not foreign."""
        with self._lock:
            entry = self._entries.get(image_id)
        watch = holders is not None and (entry is None or entry.ours)
        got = read_image(io, name, image_id, watches=self.watches, watch=watch, calls=calls)
        if got is None:
            with self._lock:
                self._entries.pop(image_id, None)
            return None
        image, static = got
        if watch and not static.ours:  # foreign: never keep a watch on it
            watch = False
            if self.watches.drop(image_id):
                calls.add("unwatch")
        with self._lock:
            self._entries[image_id] = Entry(
                image, image_id, static.ours, holders if watch else None
            )
        return image

    def prune(self, live_ids: set[str], calls: Calls) -> None:
        """Forget images that left the pool, and stop watching them."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k in live_ids}
        for image_id in self.watches.watched() - live_ids:
            if self.watches.drop(image_id):
                calls.add("unwatch")
