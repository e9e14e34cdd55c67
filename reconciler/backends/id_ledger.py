"""The id ledger: one RADOS object in the managed pool that keeps vmid/volumeid from coming back.

volctl keeps no database: ids live on the resources (domain metadata, RBD image-meta).  That
alone lets the highest id return after its owner is deleted, so the pool also holds
`volctl.ids`, a small object whose omap has

- `hwm.vm`, `hwm.volume`: the highest id of each kind ever handed out, advanced *before* a
  resource with a higher id is created (so a crash in between only skips an id);
- `deleted.volume.<volumeid>` -> JSON `{volumeid, name, sizeBytes, deletedAt}`: written just
  *before* a volume is removed (reclaimPolicy Delete), so `/volume/query` can say "deleted";
- `deleted.count`: how many such records exist, so a pass reads the three counters in one
  O(1) read op and re-reads the records only when the count changed.

A missing object is a deployment from before the ledger: every mark reads as 0 and the
planner counts from the ids the resources carry, so existing ids are unchanged (the first
creation then writes the object).  Every read-modify-write runs under a RADOS exclusive lock
on the object (`locked`), so parallel creations - the executor clones many roots at once -
and even two controllers on one pool cannot lower a mark or lose a deleted record.
Functions here take an open ioctx and run on the RBD backend's worker threads.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import rados

from reconciler.identity import META_ID, META_KIND
from reconciler.observe.types import DeletedVolume, IdLedger

OBJECT = "volctl.ids"
HWM = {"vm": "hwm.vm", "volume": "hwm.volume"}
DELETED_COUNT = "deleted.count"
DELETED_PREFIX = "deleted.volume."
_PAGE = 1000
LOCK_NAME = "volctl.ids.update"
LOCK_SECONDS = 30  # a holder that dies mid-update frees the lock after this
_local = threading.Lock()  # this process's writers queue here instead of spinning on EBUSY


@contextlib.contextmanager
def locked(io: Any, *, wait: float = 20.0) -> Iterator[None]:
    """Hold the ledger's RADOS exclusive lock (and this process's) for one update."""
    cookie = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    with _local:
        while True:
            try:
                io.lock_exclusive(OBJECT, LOCK_NAME, cookie, "volctl id ledger", LOCK_SECONDS)
                break
            except (rados.ObjectBusy, rados.ObjectExists):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            yield
        finally:
            with contextlib.suppress(rados.Error):
                io.unlock(OBJECT, LOCK_NAME, cookie)


_ID_KINDS = {"root": "vm", "volume": "volume"}  # image kind -> the id kind its volctl.id is


def new_id(meta: Mapping[str, str]) -> tuple[str, int] | None:
    """("vm" | "volume", id) when image-meta marks a root disk or a volume with its id."""
    kind = _ID_KINDS.get(meta.get(META_KIND, ""))
    value = meta.get(META_ID, "")
    return (kind, int(value)) if kind is not None and value.isdigit() else None


class Reader:
    """Reads the ledger once per pass: the counters in one op, the deleted records only when
    `deleted.count` changed since the last read (they are cached here)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deleted: tuple[int, dict[int, DeletedVolume]] = (0, {})

    def read(self, io: Any) -> IdLedger:
        counters = read_counters(io)
        count = counters[DELETED_COUNT]
        with self._lock:
            cached_count, deleted = self._deleted
        if count != cached_count:
            deleted = read_deleted(io)
            with self._lock:
                self._deleted = (count, deleted)
        return ledger(counters, deleted)


def advance_for(io: Any, meta: Mapping[str, str]) -> None:
    """Before creating an image with this meta: raise its id kind's mark to its id."""
    new = new_id(meta)
    if new is not None:
        advance(io, *new)


def read_counters(io: Any) -> dict[str, int]:
    """hwm.vm, hwm.volume and deleted.count in one read op (0 when absent)."""
    keys = (*HWM.values(), DELETED_COUNT)
    try:
        with rados.ReadOpCtx() as op:
            it, _ret = io.get_omap_vals_by_keys(op, keys)
            io.operate_read_op(op, OBJECT)
            found = {str(k): _int(v) for k, v in it}
    except rados.ObjectNotFound:
        found = {}
    return {k: found.get(k, 0) for k in keys}


def read_deleted(io: Any) -> dict[int, DeletedVolume]:
    """Every deleted-volume record, page by page."""
    out: dict[int, DeletedVolume] = {}
    after = ""
    while True:
        try:
            with rados.ReadOpCtx() as op:
                it, _ret = io.get_omap_vals(op, after, DELETED_PREFIX, _PAGE)
                io.operate_read_op(op, OBJECT)
                page = [(str(k), v) for k, v in it]
        except rados.ObjectNotFound:
            return out
        for _key, value in page:
            record = _record(value)
            if record is not None:
                out[record.volumeid] = record
        if len(page) < _PAGE:
            return out
        after = page[-1][0]


def ledger(counters: Mapping[str, int], deleted: Mapping[int, DeletedVolume]) -> IdLedger:
    return IdLedger(
        vm=counters.get(HWM["vm"], 0),
        volume=counters.get(HWM["volume"], 0),
        deleted_volumes=dict(deleted),
    )


def advance(io: Any, kind: str, value: int) -> None:
    """Ensure the high-water mark of `kind` ("vm" | "volume") is at least `value`."""
    key = HWM[kind]
    if read_counters(io)[key] >= value:  # the common case: no lock needed to see it
        return
    with locked(io):
        if read_counters(io)[key] < value:
            _write(io, {key: str(value)})


def record_deleted(io: Any, volumeid: int, name: str, size_bytes: int) -> None:
    """Record a volume about to be removed, and make sure its id stays taken."""
    with locked(io):
        _record_deleted(io, volumeid, name, size_bytes)


def _record_deleted(io: Any, volumeid: int, name: str, size_bytes: int) -> None:
    counters = read_counters(io)
    key = f"{DELETED_PREFIX}{volumeid}"
    existing = _existing(io, key)
    body = json.dumps(
        {
            "volumeid": volumeid,
            "name": name,
            "sizeBytes": size_bytes,
            "deletedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        sort_keys=True,
    )
    values = {key: body}
    if not existing:
        values[DELETED_COUNT] = str(counters[DELETED_COUNT] + 1)
    if counters[HWM["volume"]] < volumeid:
        values[HWM["volume"]] = str(volumeid)
    _write(io, values)


def _existing(io: Any, key: str) -> bool:
    try:
        with rados.ReadOpCtx() as op:
            it, _ret = io.get_omap_vals_by_keys(op, (key,))
            io.operate_read_op(op, OBJECT)
            return any(True for _ in it)
    except rados.ObjectNotFound:
        return False


def _write(io: Any, values: Mapping[str, str]) -> None:
    with rados.WriteOpCtx() as op:
        op.new(rados.LIBRADOS_CREATE_IDEMPOTENT)
        io.set_omap(op, tuple(values), tuple(v.encode() for v in values.values()))
        io.operate_write_op(op, OBJECT)


def _int(value: Any) -> int:
    try:
        return int(bytes(value).decode() if not isinstance(value, str) else value)
    except (ValueError, UnicodeDecodeError):
        return 0


def _record(value: Any) -> DeletedVolume | None:
    try:
        raw = json.loads(bytes(value).decode())
        return DeletedVolume(
            volumeid=int(raw["volumeid"]),
            name=str(raw["name"]),
            size_bytes=int(raw["sizeBytes"]),
            deleted_at=str(raw["deletedAt"]),
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None  # a record we cannot read is not worth failing the pass for
