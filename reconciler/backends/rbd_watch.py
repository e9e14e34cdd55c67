"""RADOS watches on the header objects of the managed images that running domains hold.

Why: librbd notifies an image's header object (`rbd_header.<id>`) whenever it changes the
image - resize, image-meta set or removed, snapshot created, exclusive lock taken or
released - and every watcher of that object receives the notify.  A watch therefore tells
the RBD observe which images changed since it last read them, so a steady-state pass reads
nothing per image (`rbd_observe.py`).  Measured on Pacific 16.2.15 (the figures are in
bench/RESULTS.md, B7): resize, `metadata_set`/`metadata_remove` and `create_snap` each
notify; a removed header object ends the watch with an error; **a new watcher does not
notify** (a librbd open or a plain `rados watch` bumps neither the object version nor sends
anything), and an open read-only by librbd registers no watch at all.

Why only images held by a running domain: a watch is a watcher, and librbd refuses
`rbd rm` of an image with watchers ("image still has watchers").  qemu's own watch already
blocks that for an image a running domain holds, so our watch changes nothing there; on any
other image it would block an operator's `rbd rm` of a volume volctl merely observes.  The
watch of this client is left out of the watchers volctl reports (`own_id`).

Callbacks run on librados' threads: they only mark the image dirty.  After a lost
connection every watch is forgotten (they died with the handle) and so every image is dirty.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import rados


def header_object(image_id: str) -> str:
    return f"rbd_header.{image_id}"


class HeaderWatches:
    """The watches of one cluster handle, keyed by image id, and which images changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, Any] = {}  # image id -> rados.Watch
        self._dirty: set[str] = set()  # notified or broken since the last read
        self.own_id = -1  # this client's instance id (gid): its watch is not a user

    def clean(self, image_id: str) -> bool:
        """Watched, and no notify or error since `mark_read`."""
        with self._lock:
            return image_id in self._watches and image_id not in self._dirty

    def watched(self) -> set[str]:
        with self._lock:
            return set(self._watches)

    def ensure(self, io: Any, image_id: str) -> bool:
        """Watch the image's header unless already watched; True when a watch was set up.

        Call it *before* reading the image: a change after the watch is in place is never
        missed (it marks the image dirty again)."""
        with self._lock:
            if image_id in self._watches:  # notified or not, the watch itself is fine
                return False
        watch = io.watch(
            header_object(image_id),
            lambda *_args: self._changed(image_id),
            lambda *_args: self._broken(image_id),
        )
        with self._lock:
            raced = self._watches.get(image_id)
            if raced is None:
                self._watches[image_id] = watch
        if raced is not None:  # another read watched it meanwhile: keep one (closed unlocked)
            _close_quietly(watch)
            return False
        return True

    def mark_read(self, image_id: str) -> None:
        """The image is being read now: changes from here on mark it dirty again."""
        with self._lock:
            self._dirty.discard(image_id)

    def drop(self, image_id: str) -> bool:
        """Stop watching the image (before removing it, or when no running domain holds
        it).  True when a watch was closed (one RADOS call)."""
        with self._lock:
            watch = self._watches.pop(image_id, None)
            self._dirty.discard(image_id)
        if watch is None:
            return False
        with contextlib.suppress(rados.Error):  # a header already removed: nothing to undo
            watch.close()
        return True

    def close_all(self) -> None:
        """Unwatch everything (before the cluster handle shuts down)."""
        with self._lock:
            watches, self._watches, self._dirty = list(self._watches.values()), {}, set()
        for watch in watches:
            _close_quietly(watch)

    def forget(self) -> list[Any]:
        """The connection was dropped: stop tracking its watches and hand them to the caller,
        who closes them off any caller's path (`rbd_backend._shutdown_later`).

        Never let one be freed here: a `rados.Watch` freed while still registered unwatches
        in its destructor, which waits for the OSD and for the watch callbacks in flight,
        and those wait for this lock (a deadlock that held the storage observation for good
        after a Ceph outage, R3)."""
        with self._lock:
            watches = list(self._watches.values())
            self._watches.clear()
            self._dirty.clear()
            self.own_id = -1
        return watches

    def _changed(self, image_id: str) -> None:
        with self._lock:
            if image_id in self._watches:
                self._dirty.add(image_id)

    def _broken(self, image_id: str) -> None:
        # the header is gone, or the OSD session lost the watch: read it again (and, if it
        # still exists and is held, watch it anew)
        with self._lock:
            self._dirty.add(image_id)
            watch = self._watches.pop(image_id, None)
        if watch is not None:
            threading.Thread(target=_close_quietly, args=(watch,), daemon=True).start()


def _close_quietly(watch: Any) -> None:
    with contextlib.suppress(Exception):
        watch.close()
