"""The Storage Protocol on one RBD pool (librados + librbd).

Why it looks like this:

- **Ownership.**  An image is ours only if its image-meta carries
  `volctl.managed-by=volctl` (`identity.META_MANAGED_BY`).  Every mutation checks it and
  raises `Conflict` on a foreign image.  New images are created under a scratch name
  (`volctl-tmp.<final>.<nonce>`), marked, filled, and only then renamed into place
  (`rbd_tmp.py`), so no crash ever leaves an unmarked image at a managed name; scratch
  debris is removed by later calls and never shows up in `observe()`.
- **Bounded.**  Every librados/librbd call runs on this backend's worker threads with a
  deadline (`calls.Worker`); `connect()` also gets librados' own timeout.  A timeout drops the
  cluster handle so the next call reconnects.
- **Cheap observe.**  One `list2` plus one read-only open per image (size and watchers are
  always read fresh: watchers are how a finished detach shows up).  Image-meta, parent and
  snapshots of *our* images cannot change without us, so they are cached per image id and
  re-read only after we change the image ourselves.  Opens run in parallel.
- **Idempotent.**  import/clone/create/resize/set_meta/remove all "ensure": an import that
  crashed before its snapshot is redone from scratch; a finished one is left alone.
- **Ids never come back.**  The pool also holds the id ledger (`id_ledger.py`): observe reads
  its counters in one op; `create`/`clone` of a volume or root disk advance the high-water
  mark of its id before the image exists, and `remove` of a volume records it as deleted
  before the image goes.
- No key ever passes through here: librados reads the keyring named in the Ceph conf.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import rados
import rbd

from reconciler.backends import id_ledger, rbd_tmp
from reconciler.backends.calls import Worker, ceph_connection_lost, plain_addr, translate_ceph
from reconciler.backends.rbd_import import copy_sparse, raw_source
from reconciler.errors import BackendError, Conflict, Terminal, Transient
from reconciler.identity import BASE_SNAPSHOT, MANAGED_BY, META_MANAGED_BY, META_NAME
from reconciler.observe.types import ObservedImage, ObservedStorage

T = TypeVar("T")


@dataclass(frozen=True)
class _Static:
    """What cannot change on one of our images without us."""

    name: str
    meta: Mapping[str, str]
    parent: str | None
    snapshots: tuple[str, ...]
    protected: tuple[str, ...]


def _ours(meta: Mapping[str, str]) -> bool:
    return meta.get(META_MANAGED_BY) == MANAGED_BY


def split_snapshot(spec: str) -> tuple[str, str, str]:
    """ "pool/image@snap" -> (pool, image, snap)."""
    try:
        pool_image, snap = spec.split("@", 1)
        pool, image = pool_image.split("/", 1)
    except ValueError:
        raise Terminal(f"{spec!r} is not of the form pool/image@snap") from None
    if not (pool and image and snap):
        raise Terminal(f"{spec!r} is not of the form pool/image@snap")
    return pool, image, snap


class RbdStorage:
    """One RBD pool reached with a Ceph conf and cephx user.  Implements `protocols.Storage`."""

    def __init__(
        self,
        conf: str,
        pool: str = "rbd",
        user: str = "admin",
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        import_timeout: float = 1800.0,
        threads: int = 4,
        tmp_grace: float = 10.0,
    ) -> None:
        self.conf = conf
        self.pool = pool
        self.user = user
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.import_timeout = import_timeout
        self.tmp_grace = tmp_grace  # scratch images older than this, open by nobody: debris
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._ioctx: dict[str, Any] = {}
        self._busy: dict[int, int] = {}  # id(cluster handle) -> calls running on it
        self._retired: dict[int, tuple[Any, list[Any]]] = {}  # dropped, shut down when idle
        self._static: dict[str, _Static] = {}  # image id -> cached static facts
        self._ledger = id_ledger.Reader()  # caches the deleted records between passes
        self._worker = Worker("rbd", threads=threads, on_timeout=self._timed_out)
        # called with the client address of every new cluster connection before it is used;
        # an HA leader records it for fencing and refuses it once it may no longer act
        self.connect_hook: Callable[[str], None] | None = None

    # -- connection -------------------------------------------------------------------------

    def _timed_out(self, what: str) -> None:
        self._drop(f"{what} timed out")

    def _drop(self, _reason: str) -> None:
        """Forget the cluster handle; the next call connects afresh.  The old handle is shut
        down once no call is running on it any more: at once when idle, else when its last
        stuck call returns (Ceph came back).  No shutdown ever runs under a call, and no
        handle is left behind: each one holds a dozen librados threads and its sockets, and
        one leaked per Ceph outage grew the controller without bound (reliability R3)."""
        with self._lock:
            cluster, ios = self._cluster, list(self._ioctx.values())
            self._cluster = None  # stuck threads keep their references
            self._ioctx = {}
            self._static = {}
            if cluster is None:
                return
            if self._busy.get(id(cluster), 0) > 0:
                self._retired[id(cluster)] = (cluster, ios)
                return
        _shutdown_later(cluster, ios)

    def _acquire(self, pool: str) -> tuple[Any, Any]:
        """(cluster, ioctx), connecting if needed, counted as busy until `_release`.
        Runs on a worker thread."""
        with self._lock:
            cluster = self._cluster
            io = self._ioctx.get(pool)
            if cluster is not None and io is not None:
                self._busy[id(cluster)] = self._busy.get(id(cluster), 0) + 1
                return cluster, io
        if cluster is None:
            cluster = rados.Rados(conffile=self.conf, rados_id=self.user)
            try:
                cluster.connect(timeout=int(max(1, self.connect_timeout)))
                if self.connect_hook is not None:
                    self.connect_hook(plain_addr(str(cluster.get_addrs())))
            except BaseException:
                _shutdown_later(cluster, [])
                raise
        io = cluster.open_ioctx(pool)
        with self._lock:
            if self._cluster is None:
                self._cluster = cluster
            if self._cluster is cluster:
                self._ioctx[pool] = io
            else:  # another thread connected meanwhile: this handle retires after this call
                self._retired[id(cluster)] = (cluster, [io])
            self._busy[id(cluster)] = self._busy.get(id(cluster), 0) + 1
        return cluster, io

    def _release(self, cluster: Any) -> None:
        with self._lock:
            left = self._busy.get(id(cluster), 0) - 1
            if left > 0:
                self._busy[id(cluster)] = left
                return
            self._busy.pop(id(cluster), None)
            retired = self._retired.pop(id(cluster), None)
        if retired is not None:
            _shutdown_later(*retired)

    def _with_io(self, fn: Callable[..., T], *args: Any, pool: str | None = None) -> T:
        """fn(ioctx, *args) on a worker thread, with the handle counted as busy."""
        cluster, io = self._acquire(pool or self.pool)
        try:
            return fn(io, *args)
        finally:
            self._release(cluster)

    def retired_handles(self) -> int:
        """Dropped cluster handles still waiting for a stuck call (tests, metrics)."""
        with self._lock:
            return len(self._retired)

    def _call(self, what: str, fn: Callable[[Any], T], *, timeout: float | None = None) -> T:
        def body() -> T:
            return self._with_io(fn)

        try:
            return self._worker.run(body, timeout=timeout or self.timeout, what=what)
        except BackendError:
            raise
        except Exception as exc:
            if ceph_connection_lost(exc):
                self._drop(str(exc))
            raise translate_ceph(exc, f"rbd {what}") from exc

    def close(self) -> None:
        with self._lock:
            cluster, self._cluster, self._ioctx = self._cluster, None, {}
            retired, self._retired = list(self._retired.values()), {}
        for old, ios in retired:  # still stuck: abandoned with the process
            del old, ios
        if cluster is not None:
            with contextlib.suppress(BackendError):  # best effort; abandoned if it hangs
                self._worker.run(cluster.shutdown, timeout=self.connect_timeout, what="shutdown")
        self._worker.close()

    def _forget(self, name: str) -> None:
        with self._lock:
            self._static = {k: v for k, v in self._static.items() if v.name != name}

    # -- observe ----------------------------------------------------------------------------

    def _read_image(self, io: Any, name: str, image_id: str) -> ObservedImage | None:
        try:
            with rbd.Image(io, name, read_only=True) as im:
                size = int(im.size())
                watchers = tuple(sorted(str(w["addr"]) for w in im.watchers_list()))
                with self._lock:
                    static = self._static.get(image_id)
                if static is None or static.name != name:
                    static = self._read_static(im, name)
                    if _ours(static.meta):
                        with self._lock:
                            self._static[image_id] = static
        except rbd.ImageNotFound:
            return None  # removed between the listing and the open
        return ObservedImage(
            name=name,
            size_bytes=size,
            meta=dict(static.meta),
            parent=static.parent,
            snapshots=static.snapshots,
            protected_snapshots=static.protected,
            watchers=watchers,
        )

    @staticmethod
    def _read_static(im: Any, name: str) -> _Static:
        meta = {str(k): str(v) for k, v in im.metadata_list()}
        try:
            p = im.get_parent_image_spec()
            parent: str | None = f"{p['pool_name']}/{p['image_name']}@{p['snap_name']}"
        except rbd.ImageNotFound:
            parent = None
        snaps = tuple(str(s["name"]) for s in im.list_snaps())
        protected = tuple(s for s in snaps if im.is_protected_snap(s))
        return _Static(name, meta, parent, snaps, protected)

    def _snapshot_exists(self, spec: str) -> bool:
        def has_snap(io: Any, image: str, snap: str) -> bool:
            with rbd.Image(io, image, read_only=True) as im:
                return any(s["name"] == snap for s in im.list_snaps())

        try:
            pool, image, snap = split_snapshot(spec)
            return self._with_io(has_snap, image, snap, pool=pool)
        except (rbd.ImageNotFound, rados.ObjectNotFound, Terminal):
            return False

    def observe(self, external_snapshots: tuple[str, ...] = ()) -> ObservedStorage:
        try:
            everything = self._call(
                "list", lambda io: [(e["name"], e["id"]) for e in rbd.RBD().list2(io)]
            )
            listing = [(n, i) for n, i in everything if not rbd_tmp.is_tmp(n)]
            scratch = [n for n, _ in everything if rbd_tmp.is_tmp(n)]
            calls: list[Callable[[], object]] = [
                functools.partial(self._with_io, self._read_image, n, i) for n, i in listing
            ]
            calls += [functools.partial(self._snapshot_exists, s) for s in external_snapshots]
            results = self._worker.run_all(calls, timeout=self.timeout, what="observe images")
            ids = self._call("read id ledger", self._ledger.read)
        except BackendError as exc:
            return ObservedStorage(reachable=False, reason=str(exc), pool=self.pool)
        except Exception as exc:  # noqa: BLE001 - any library error means "could not see"
            if ceph_connection_lost(exc):
                self._drop(str(exc))
            err = translate_ceph(exc, "rbd observe")
            return ObservedStorage(reachable=False, reason=str(err), pool=self.pool)
        images = {
            img.name: img for img in results[: len(listing)] if isinstance(img, ObservedImage)
        }
        found = {
            s: bool(r) for s, r in zip(external_snapshots, results[len(listing) :], strict=True)
        }
        if scratch:  # crash debris of our own (never a volume, root or base image)
            with contextlib.suppress(Exception):
                self._call("sweep", lambda io: rbd_tmp.sweep(io, scratch, self.tmp_grace))
        with self._lock:
            live_ids = {i for _, i in listing}
            self._static = {k: v for k, v in self._static.items() if k in live_ids}
        return ObservedStorage(
            reachable=True, pool=self.pool, images=images, external_snapshots=found, ids=ids
        )

    # -- mutation helpers (run on worker threads) -------------------------------------------

    @staticmethod
    def _open(io: Any, name: str) -> Any | None:
        try:
            return rbd.Image(io, name)
        except rbd.ImageNotFound:
            return None

    def _check_ours(self, im: Any, name: str) -> dict[str, str]:
        meta = {str(k): str(v) for k, v in im.metadata_list()}
        if not _ours(meta):
            raise Conflict(f"rbd image {self.pool}/{name} is not managed by volctl")
        return meta

    @staticmethod
    def _ensure_meta(im: Any, current: Mapping[str, str], meta: Mapping[str, str]) -> None:
        for key, value in meta.items():
            if current.get(key) != value:
                im.metadata_set(key, value)

    @staticmethod
    def _marked(meta: Mapping[str, str]) -> dict[str, str]:
        return {META_MANAGED_BY: MANAGED_BY, **meta}

    # The steps of creating an image (tests call them one by one to simulate a crash between
    # any two): make a scratch image, mark it, rename it to its final name.

    def _scratch_create(self, io: Any, final: str, size_bytes: int) -> str:
        rbd_tmp.sweep(io, rbd_tmp.leftovers(io, final), self.tmp_grace)
        tmp = rbd_tmp.new_name(final)
        rbd.RBD().create(io, tmp, size_bytes, old_format=False)
        return tmp

    def _scratch_clone(self, io: Any, parent: str, final: str) -> str:
        p_pool, p_image, p_snap = split_snapshot(parent)
        rbd_tmp.sweep(io, rbd_tmp.leftovers(io, final), self.tmp_grace)
        tmp = rbd_tmp.new_name(final)
        self._with_io(lambda p_io: rbd.RBD().clone(p_io, p_image, p_snap, io, tmp), pool=p_pool)
        return tmp

    def _mark(self, io: Any, tmp: str, meta: Mapping[str, str], size_bytes: int = 0) -> None:
        with rbd.Image(io, tmp) as im:
            self._ensure_meta(im, {}, self._marked(meta))
            if size_bytes > im.size():
                im.resize(size_bytes)

    def _publish(self, io: Any, tmp: str, final: str) -> None:
        if not rbd_tmp.publish(io, tmp, final):
            raise Conflict(f"rbd image {self.pool}/{final} appeared while it was being created")

    # -- mutations --------------------------------------------------------------------------

    def create(self, name: str, size_bytes: int, meta: dict[str, str]) -> None:
        def work(io: Any) -> None:
            im = self._open(io, name)
            if im is None:
                id_ledger.advance_for(io, meta)
                tmp = self._scratch_create(io, name, size_bytes)
                self._mark(io, tmp, meta)
                self._publish(io, tmp, name)
                return
            with im:
                current = self._check_ours(im, name)
                self._ensure_meta(im, current, self._marked(meta))

        self._forget(name)
        self._call(f"create {name}", work)

    def resize(self, name: str, size_bytes: int) -> None:
        def work(io: Any) -> None:
            with rbd.Image(io, name) as im:
                self._check_ours(im, name)
                if size_bytes > im.size():
                    im.resize(size_bytes)

        self._forget(name)
        self._call(f"resize {name}", work)

    def set_meta(self, name: str, meta: dict[str, str]) -> None:
        def work(io: Any) -> None:
            with rbd.Image(io, name) as im:
                current = self._check_ours(im, name)
                self._ensure_meta(im, current, meta)

        self._forget(name)
        self._call(f"set_meta {name}", work)

    def remove(self, name: str) -> None:
        def work(io: Any) -> None:
            # Checks on a read-only open: a read-write open would add our own watcher.
            with rbd.Image(io, name, read_only=True) as im:
                meta = self._check_ours(im, name)
                size = int(im.size())
                watchers = list(im.watchers_list())
                if watchers:
                    addrs = ", ".join(str(w["addr"]) for w in watchers)
                    raise Transient(f"rbd image {self.pool}/{name} is in use by {addrs}")
                snaps, protected = rbd_tmp.snapshots(im)
                children = list(im.list_children2()) if protected else []
                if children:
                    raise Conflict(
                        f"rbd image {self.pool}/{name} still has {len(children)} clone(s)"
                    )
            new = id_ledger.new_id(meta)
            if new is not None and new[0] == "volume":  # recorded first: a crash only repeats it
                id_ledger.record_deleted(io, new[1], meta.get(META_NAME, name), size)
            rbd_tmp.remove_image(io, name, snaps, protected)

        self._forget(name)
        self._call(f"remove {name}", work)

    def clone(self, parent: str, name: str, size_bytes: int, meta: dict[str, str]) -> None:
        split_snapshot(parent)  # a malformed parent is Terminal before any call

        def work(io: Any) -> None:
            im = self._open(io, name)
            if im is None:
                id_ledger.advance_for(io, meta)
                tmp = self._scratch_clone(io, parent, name)
                self._mark(io, tmp, meta, size_bytes)
                self._publish(io, tmp, name)
                return
            with im:
                current = self._check_ours(im, name)
                try:
                    spec = im.get_parent_image_spec()
                    have = f"{spec['pool_name']}/{spec['image_name']}@{spec['snap_name']}"
                except rbd.ImageNotFound:
                    have = None
                if have != parent:
                    raise Conflict(
                        f"rbd image {self.pool}/{name} exists as a clone of {have}, not of {parent}"
                    )
                self._ensure_meta(im, current, self._marked(meta))
                if size_bytes > im.size():
                    im.resize(size_bytes)

        self._forget(name)
        self._call(f"clone {parent} -> {name}", work)

    def import_image(self, name: str, path: str, meta: dict[str, str]) -> None:
        src = Path(path)
        if not src.is_file():
            raise Terminal(f"image source {path} does not exist")

        def work(io: Any) -> None:
            im = self._open(io, name)
            if im is not None:
                with im:
                    current = self._check_ours(im, name)
                    snaps = {s["name"] for s in im.list_snaps()}
                    if BASE_SNAPSHOT in snaps:  # the snapshot is taken only after all data
                        if not im.is_protected_snap(BASE_SNAPSHOT):
                            im.protect_snap(BASE_SNAPSHOT)
                        self._ensure_meta(im, current, self._marked(meta))
                        return
                rbd.RBD().remove(io, name)  # a partial import from a crash: start over
            with raw_source(src, self.import_timeout) as raw:
                tmp = self._scratch_create(io, name, raw.stat().st_size)
                self._mark(io, tmp, meta)
                with rbd.Image(io, tmp) as im:
                    copy_sparse(raw, im)
                    im.flush()
                    im.create_snap(BASE_SNAPSHOT)
                    im.protect_snap(BASE_SNAPSHOT)
            self._publish(io, tmp, name)

        self._forget(name)
        self._call(f"import {path} -> {name}", work, timeout=self.import_timeout)


def _shutdown_later(cluster: Any, ios: list[Any]) -> None:
    """Close IOS and shut CLUSTER down on a daemon thread: with Ceph away a shutdown may
    block, and it must never block a caller."""

    def run() -> None:
        for io in ios:
            with contextlib.suppress(Exception):
                io.close()
        with contextlib.suppress(Exception):
            cluster.shutdown()

    threading.Thread(target=run, name="rbd-shutdown", daemon=True).start()
