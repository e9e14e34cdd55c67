"""The Storage Protocol on one RBD pool (librados + librbd).

Why it looks like this:

- **Ownership.**  An image is ours only if its image-meta carries
  `volctl.managed-by=volctl` (`identity.META_MANAGED_BY`) and `volctl.installation`, when
  present, names this installation (pools shared under explicit `installation:` names; an
  image marked before installations were named has no such key and stays ours: it is in
  our pool).  Every mutation checks it and raises `Conflict` on a foreign image.  Which
  installation we are is `installation()` (`rbd_owner.py`): the configured name, else
  "<fsid>/<pool>", the fsid read with the first connection.
  New images are created under a scratch name (`volctl-tmp.<final>.<nonce>`), marked,
  filled, and only then renamed into place (`rbd_tmp.py`), so no crash ever leaves an
  unmarked image at a managed name; scratch debris is removed by later calls and never
  shows up in `observe()`.
- **Bounded.**  Every librados/librbd call runs on this backend's worker threads with a
  deadline (`calls.Worker`); `connect()` also gets librados' own timeout.  A timeout drops the
  cluster handle so the next call reconnects.
- **Cheap observe.**  A steady-state pass makes a constant number of Ceph calls: one `stat`
  of `rbd_directory` (the listing is read again only when its version moved), the id
  ledger, and a read of each image that changed or whose attachment is in doubt; images
  held by running domains are watched and come from the previous read until their header
  is notified (`rbd_observe.py`, `rbd_watch.py`).  Reads run in parallel.
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
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import rados
import rbd

from reconciler.backends import id_ledger, rbd_tmp
from reconciler.backends.calls import Worker, ceph_connection_lost, plain_addr, translate_ceph
from reconciler.backends.rbd_import import copy_sparse, raw_source
from reconciler.backends.rbd_observe import Calls, PoolCache
from reconciler.backends.rbd_owner import Owner
from reconciler.backends.ssh_import import SshStream, copy_stream
from reconciler.errors import BackendError, Conflict, Terminal, Transient
from reconciler.identity import (
    BASE_SNAPSHOT,
    MANAGED_BY,
    META_INSTALLATION,
    META_MANAGED_BY,
    META_NAME,
    Installation,
)
from reconciler.observe.types import ObservedImage, ObservedStorage
from reconciler.payload import ImageFile, LocalFile, SshFile

T = TypeVar("T")


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
        installation: str | None = None,
    ) -> None:
        self.conf = conf
        self.owner = Owner(pool, installation, lambda: self._call("connect", lambda _io: None))
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
        self._dir_io: tuple[int, Any] | None = None  # (id(cluster), ioctx) for rbd_directory
        self._dir_lock = threading.Lock()
        self._cache = PoolCache()
        self._calls = Calls()
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
            if self._dir_io is not None:
                ios.append(self._dir_io[1])
            self._dir_io = None
        # its watches are closed with it, before its ioctxs (never freed while registered:
        # rbd_watch.HeaderWatches.forget says why)
        ios = [*self._cache.reset(), *ios]
        with self._lock:
            if cluster is None:
                if ios:  # watches of a handle already retired: closed, nothing to shut down
                    _shutdown_later(None, ios)
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
        if not self.owner.known:
            self.owner.learn(str(cluster.get_fsid()))  # from the monmap: no round trip
        io = cluster.open_ioctx(pool)
        with self._lock:
            if self._cluster is None:
                self._cluster = cluster
                self._cache.watches.own_id = int(cluster.get_instance_id())
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

    def installation(self) -> Installation:
        """This installation (`rbd_owner.Owner`: may connect once to read the fsid)."""
        return self.owner.get()

    def _foreign(self, img: ObservedImage) -> ObservedImage:
        """`img`, flagged as another installation's when its image-meta names one."""
        return img if self.owner.other(img.meta) is None else replace(img, other_installation=True)

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

            def shutdown() -> None:
                self._cache.watches.close_all()  # a watch must not outlive its handle
                cluster.shutdown()

            with contextlib.suppress(BackendError):  # best effort; abandoned if it hangs
                self._worker.run(shutdown, timeout=self.connect_timeout, what="shutdown")
        self._worker.close()

    def _forget(self, name: str) -> None:
        self._cache.forget(name)

    # -- observe ----------------------------------------------------------------------------

    def _refresh_listing(self, _io: Any, calls: Calls) -> None:
        """Runs under `_with_io` (the handle is busy).  The directory's version is read
        through an ioctx of its own: `get_last_version` is per ioctx."""
        if not self._dir_lock.acquire(timeout=self.timeout):
            raise Transient("rbd directory: an earlier listing is still stuck")
        try:
            with self._lock:
                cluster, dir_io = self._cluster, self._dir_io
            if cluster is None:
                raise Transient("rbd directory: the connection was dropped")
            if dir_io is None or dir_io[0] != id(cluster):
                dir_io = (id(cluster), cluster.open_ioctx(self.pool))
                with self._lock:
                    self._dir_io = dir_io
            self._cache.listing.refresh(dir_io[1], calls)
        finally:
            self._dir_lock.release()

    def _snapshot_exists(self, spec: str, calls: Calls) -> bool:
        def has_snap(io: Any, image: str, snap: str) -> bool:
            with rbd.Image(io, image, read_only=True) as im:
                return any(s["name"] == snap for s in im.list_snaps())

        calls.add("snapshot_exists")
        try:
            pool, image, snap = split_snapshot(spec)
            return self._with_io(has_snap, image, snap, pool=pool)
        except (rbd.ImageNotFound, rados.ObjectNotFound, Terminal):
            return False

    def observe(
        self,
        external_snapshots: tuple[str, ...] = (),
        held: Mapping[str, str] | None = None,
    ) -> ObservedStorage:
        """The pool, reading only what may have changed (rbd_observe.py).

        HELD maps the images that running domains on reachable hosts hold to who holds
        them; only those may come from the previous read.  None: every image of ours is
        read (nothing is known about attachments)."""
        calls = self._calls.child()
        try:
            self._call("directory", lambda io: self._refresh_listing(io, calls))
            everything = list(self._cache.listing.images)
            listing = [(n, i) for n, i in everything if not rbd_tmp.is_tmp(n)]
            scratch = [n for n, _ in everything if rbd_tmp.is_tmp(n)]
            images: dict[str, ObservedImage] = {}
            reads: list[Callable[[], object]] = []
            for name, image_id in listing:
                holders = held.get(name) if held is not None else None
                img = self._cache.cached(name, image_id, holders)
                if img is not None:
                    images[name] = img
                else:
                    reads.append(
                        functools.partial(
                            self._with_io, self._cache.read, name, image_id, holders, calls
                        )
                    )
            reads += [
                functools.partial(self._snapshot_exists, s, calls) for s in external_snapshots
            ]
            results = self._worker.run_all(reads, timeout=self.timeout, what="observe images")
            calls.add("ledger")
            ids = self._call("read id ledger", self._ledger.read)
        except BackendError as exc:
            return ObservedStorage(reachable=False, reason=str(exc), pool=self.pool)
        except Exception as exc:  # noqa: BLE001 - any library error means "could not see"
            if ceph_connection_lost(exc):
                self._drop(str(exc))
            err = translate_ceph(exc, "rbd observe")
            return ObservedStorage(reachable=False, reason=str(err), pool=self.pool)
        n_images = len(reads) - len(external_snapshots)
        images.update(
            (img.name, img) for img in results[:n_images] if isinstance(img, ObservedImage)
        )
        found = {s: bool(r) for s, r in zip(external_snapshots, results[n_images:], strict=True)}
        if scratch:  # crash debris of our own (never a volume, root or base image)
            calls.add("sweep", len(scratch))
            with contextlib.suppress(Exception):
                self._call("sweep", lambda io: rbd_tmp.sweep(io, scratch, self.tmp_grace))
        live = {i for _, i in listing}
        # unwatching images that left the pool is a RADOS call like any other: bounded, on a
        # worker (an unwatch sent to a frozen OSD once held the observation for good, R3)
        if self._cache.watches.watched() - live:
            with contextlib.suppress(BackendError):
                self._call("unwatch", lambda _io: self._cache.prune(live, calls))
        else:
            self._cache.prune(live, calls)  # no RADOS call: only forgets entries
        return ObservedStorage(
            reachable=True,
            pool=self.pool,
            images={n: self._foreign(img) for n, img in sorted(images.items())},
            external_snapshots=found,
            ids=ids,
            calls=calls.stats(),
        )

    def call_count(self) -> int:
        """librados/librbd calls made so far (the RBD side of `Hypervisor.rpc_count`)."""
        return self._calls.total()

    def call_stats(self) -> dict[str, int]:
        """The same, by kind (`open`, `watchers`, `stat`, `list`, `watch`, ...)."""
        return self._calls.stats()

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
        marked_by = self.owner.other(meta)
        if marked_by is not None:
            raise Conflict(
                f"rbd image {self.pool}/{name} belongs to volctl installation {marked_by!r}"
            )
        return meta

    @staticmethod
    def _ensure_meta(im: Any, current: Mapping[str, str], meta: Mapping[str, str]) -> None:
        for key, value in meta.items():
            if current.get(key) != value:
                im.metadata_set(key, value)

    def _marked(self, meta: Mapping[str, str]) -> dict[str, str]:
        return {META_MANAGED_BY: MANAGED_BY, META_INSTALLATION: self.owner.name(), **meta}

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
                self._cache.watches.drop(str(im.id()))  # our watch would make librbd refuse
                size = int(im.size())
                own = self._cache.watches.own_id
                watchers = [w for w in im.watchers_list() if w["id"] != own]
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

    def import_image(self, name: str, source: ImageFile, meta: dict[str, str]) -> None:
        if isinstance(source, LocalFile) and not Path(source.path).is_file():
            raise Terminal(f"image source {source} does not exist")

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
            if isinstance(source, SshFile):
                # ssh is killed a little before the call's deadline, so its error is the one seen
                with SshStream(source, max(self.import_timeout - 5, 1)) as stream:
                    tmp = self._fill(
                        io, name, stream.size, meta, lambda im: copy_stream(stream, im)
                    )
            else:
                with raw_source(Path(source.path), self.import_timeout) as raw:
                    size = raw.stat().st_size
                    tmp = self._fill(io, name, size, meta, lambda im: copy_sparse(raw, im))
            self._publish(io, tmp, name)

        self._forget(name)
        self._call(f"import {source} -> {name}", work, timeout=self.import_timeout)

    def _fill(
        self, io: Any, name: str, size: int, meta: dict[str, str], write: Callable[[Any], None]
    ) -> str:
        """A marked scratch image of SIZE bytes written by WRITE, with its protected base
        snapshot; returns the scratch name (published by the caller)."""
        tmp = self._scratch_create(io, name, size)
        self._mark(io, tmp, meta)
        with rbd.Image(io, tmp) as im:
            write(im)
            im.flush()
            im.create_snap(BASE_SNAPSHOT)
            im.protect_snap(BASE_SNAPSHOT)
        return tmp


def _shutdown_later(cluster: Any | None, ios: list[Any]) -> None:
    """Close IOS (watches, then ioctxs, in that order) and shut CLUSTER (if any) down on a
    daemon thread: with Ceph away a close or a shutdown may block, and it must never block a
    caller."""

    def run() -> None:
        for io in ios:
            with contextlib.suppress(Exception):
                io.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.shutdown()

    threading.Thread(target=run, name="rbd-shutdown", daemon=True).start()
