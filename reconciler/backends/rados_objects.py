"""Plain RADOS objects in one pool namespace: versioned reads, compare-and-swap writes,
watch/notify, and the client identity a fencing leader blocklists.

Why a module of its own: the HA control plane keeps desired state, the leader lease and the
published status in RADOS (issue 9), and only the backend layer may touch the `rados`
binding.  Everything above talks to `RadosNamespace` in the project's own terms: an object's
bytes come with its RADOS *version* (bumped by the OSD at every write), a write may demand
the version it was based on (`assert_version`) or that the object does not exist yet
(exclusive create), and a mismatch is a `Conflict`, never a silent overwrite.

Every call runs on a `Worker` thread with a deadline, and the connection sets librados' own
op timeouts, so a dead Ceph makes calls fail with `CallTimeout`/`Transient` instead of
hanging a replica.  A lost or blocklisted connection is dropped; the next call reconnects
with a new client identity.
"""

from __future__ import annotations

import contextlib
import errno
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import rados

from reconciler.backends.calls import Worker, ceph_connection_lost, plain_addr, translate_ceph
from reconciler.errors import BackendError, Conflict, NotFound, Transient

MAX_OBJECT = 4 << 20  # a spec or a compressed status snapshot is far below this
_CAS_FAILED = {errno.ERANGE, errno.EOVERFLOW, errno.EEXIST, errno.ECANCELED}


@dataclass(frozen=True)
class Stored:
    """An object's bytes and the version they were read at."""

    name: str
    data: bytes
    version: int


class RadosNamespace:
    """One pool and namespace of one Ceph cluster, reached as `user` through `conf`."""

    def __init__(
        self,
        conf: str,
        pool: str,
        namespace: str,
        *,
        user: str = "admin",
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.conf = conf
        self.pool = pool
        self.namespace = namespace
        self.user = user
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._ioctx: Any = None
        self._worker = Worker(f"rados {pool}/{namespace}", threads=8, on_timeout=self._drop)
        self._watches: list[Any] = []
        self._op_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"rados://{self.pool}/{self.namespace}"

    # -- connection -------------------------------------------------------------------------

    def _drop(self, _reason: str = "") -> None:
        with self._lock:
            self._cluster, self._ioctx = None, None
            self._watches = []

    def _io(self) -> Any:
        with self._lock:
            if self._ioctx is not None:
                return self._ioctx
        secs = str(max(1, int(self.timeout)))
        cluster = rados.Rados(
            conffile=self.conf,
            rados_id=self.user,
            conf={"rados_osd_op_timeout": secs, "rados_mon_op_timeout": secs},
        )
        cluster.connect(timeout=int(max(1, self.connect_timeout)))
        io = cluster.open_ioctx(self.pool)
        io.set_namespace(self.namespace)
        with self._lock:
            self._cluster, self._ioctx = cluster, io
        return io

    def call(self, what: str, fn: Callable[[Any], Any], *, timeout: float | None = None) -> Any:
        """Run fn(ioctx) on a worker thread with a deadline; typed errors only."""

        def body() -> Any:
            return fn(self._io())

        try:
            return self._worker.run(body, timeout=timeout or self.timeout, what=what)
        except BackendError:
            raise
        except Exception as exc:
            if ceph_connection_lost(exc) or _errno(exc) == errno.ESHUTDOWN:
                self._drop(str(exc))
            raise translate_ceph(exc, f"rados {what}") from exc

    def connect(self) -> None:
        """Connect now (raises a typed error when Ceph cannot be reached)."""
        self.call("connect", lambda _io: None, timeout=self.connect_timeout + self.timeout)

    def close(self) -> None:
        with self._lock:
            cluster, watches = self._cluster, self._watches
            self._cluster, self._ioctx, self._watches = None, None, []
        for w in watches:
            with contextlib.suppress(Exception):
                self._worker.run(w.close, timeout=2, what="unwatch")
        if cluster is not None:
            with contextlib.suppress(BackendError):
                self._worker.run(cluster.shutdown, timeout=self.connect_timeout, what="shutdown")
        self._worker.close()

    # -- objects ----------------------------------------------------------------------------

    def names(self, prefix: str = "") -> list[str]:
        def work(io: Any) -> list[str]:
            return sorted(o.key for o in io.list_objects() if o.key.startswith(prefix))

        out: list[str] = self.call(f"list {prefix}*", work)
        return out

    def read(self, name: str) -> Stored | None:
        """The object's bytes and version, or None when it does not exist."""
        found: Stored | None = self.call(f"read {name}", lambda io: self._read_one(io, name))
        return found

    def read_many(self, names: list[str]) -> list[Stored]:
        """Read several objects in one worker call; ones removed since they were listed are
        left out."""

        def work(io: Any) -> list[Stored]:
            return [s for n in names if (s := self._read_one(io, n)) is not None]

        out: list[Stored] = self.call("read specs", work, timeout=self.timeout + 0.01 * len(names))
        return out

    def _read_one(self, io: Any, name: str) -> Stored | None:
        # get_last_version() is per ioctx: the op and the version read are one step
        with self._op_lock:
            try:
                data = io.read(name, MAX_OBJECT)
            except rados.ObjectNotFound:
                return None
            return Stored(name, bytes(data), int(io.get_last_version()))

    def write(self, name: str, data: bytes, *, expect: int | None) -> int:
        """Replace the object's bytes if it is still at version `expect` (None: only if it
        does not exist).  Raises Conflict otherwise.  Returns the new version."""

        def work(io: Any) -> int:
            with rados.WriteOpCtx() as op:
                if expect is None:
                    op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
                else:
                    op.assert_version(expect)
                op.write_full(data)
                with self._op_lock:
                    io.operate_write_op(op, name)
                    return int(io.get_last_version())

        version: int = self._cas(f"write {name}", work, name, expect)
        return version

    def remove(self, name: str, *, expect: int) -> None:
        """Remove the object if it is still at version `expect`; Conflict otherwise."""

        def work(io: Any) -> None:
            with rados.WriteOpCtx() as op:
                op.assert_version(expect)
                op.remove()
                io.operate_write_op(op, name)

        self._cas(f"remove {name}", work, name, expect)

    def put(self, name: str, data: bytes) -> None:
        """Unconditional replace (status snapshots: last writer wins by design)."""
        self.call(f"put {name}", lambda io: io.write_full(name, data))

    def _cas(self, what: str, work: Callable[[Any], Any], name: str, expect: int | None) -> Any:
        try:
            return self.call(what, work)
        except (Conflict, NotFound, Transient) as exc:
            code = _errno(exc.__cause__) if exc.__cause__ is not None else None
            if isinstance(exc, Conflict) or code in _CAS_FAILED or isinstance(exc, NotFound):
                base = "absent" if expect is None else f"version {expect}"
                raise Conflict(
                    f"{name} was modified by someone else since it was read (read at {base})"
                ) from exc
            raise

    # -- watch / notify ---------------------------------------------------------------------

    def ensure(self, name: str) -> None:
        """Create the object empty if it does not exist (a watch needs an object)."""

        def work(io: Any) -> None:
            with rados.WriteOpCtx() as op:
                op.new(rados.LIBRADOS_CREATE_IDEMPOTENT)
                io.operate_write_op(op, name)

        self.call(f"create {name}", work)

    def watch(self, name: str, on_notify: Callable[[bytes], None]) -> None:
        """Call on_notify(message) for every notify on `name`; a broken watch (connection
        reset, timeout) is re-established and reported as an empty notify, so the watcher
        re-reads what it might have missed."""
        self.ensure(name)

        def callback(_notify_id: int, _notifier: str, _watch_id: int, data: bytes) -> None:
            on_notify(bytes(data or b""))

        def on_error(_watch_id: int, _err: int) -> None:
            threading.Thread(target=rewatch, daemon=True, name="rados-rewatch").start()

        def rewatch() -> None:
            while True:
                try:
                    self._register(name, callback, on_error)
                except BackendError:
                    threading.Event().wait(1.0)
                    continue
                on_notify(b"")
                return

        self._register(name, callback, on_error)

    def _register(self, name: str, callback: Any, on_error: Any) -> None:
        handle = self.call(
            f"watch {name}", lambda io: io.watch(name, callback, on_error, timeout=10)
        )
        with self._lock:
            self._watches.append(handle)

    def notify(self, name: str, message: str = "", timeout_ms: int = 1000) -> None:
        """Tell every watcher of `name`; a watcher that does not answer (a dead replica
        whose watch has not timed out yet) is not an error."""

        def work(io: Any) -> None:
            with contextlib.suppress(rados.TimedOut):
                io.notify(name, message, timeout_ms)

        self.call(f"notify {name}", work, timeout=timeout_ms / 1000 + self.timeout)

    # -- identity and fencing ----------------------------------------------------------------

    def client_address(self) -> str:
        """This connection's client address as `osd blocklist` takes it (ip:port/nonce)."""

        def work(_io: Any) -> str:
            with self._lock:
                cluster = self._cluster
            raw = str(cluster.get_addrs())
            return plain_addr(raw)

        out: str = self.call("get_addrs", work)
        return out

    def blocklist(self, address: str, seconds: int) -> None:
        """`ceph osd blocklist add ADDRESS SECONDS`: the OSDs refuse that client from now on."""

        def work(_io: Any) -> None:
            with self._lock:
                cluster = self._cluster
            cmd = {
                "prefix": "osd blocklist",
                "blocklistop": "add",
                "addr": address,
                "expire": float(seconds),
            }
            ret, _out, err = cluster.mon_command(json.dumps(cmd), b"")
            if ret != 0:
                raise Transient(f"osd blocklist add {address}: {err} ({ret})")

        self.call(f"blocklist {address}", work)

    def execute(self, name: str, cls: str, method: str, payload: bytes) -> bytes:
        """Call an OSD object class method (cls_lock) on `name`."""

        def work(io: Any) -> bytes:
            _ret, out = io.execute(name, cls, method, payload)
            return bytes(out or b"")

        out: bytes = self.call(f"{cls}.{method} {name}", work)
        return out


def _errno(exc: BaseException | None) -> int | None:
    code = getattr(exc, "errno", None)
    return abs(int(code)) if isinstance(code, int) else None
