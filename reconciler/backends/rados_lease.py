"""The leader lease: one RADOS object with an exclusive `cls_lock` lock and a leader record.

Why cls_lock and not a lock of our own: the OSD that stores the object decides, atomically,
who holds the lock and until when, and the lock survives any replica's crash by expiring.
The lock is called directly through `execute("lock", "lock", ...)` with a hand-encoded
`cls_lock_lock_op`, because python-rados 16.x `lock_exclusive(duration=)` leaves the
microseconds of the duration uninitialised (a 3 s lease lasted 0.5-6.5 s; see
shared/notes/lab-ceph.md).

The same object holds the leader record (JSON: replica, epoch, client addresses), written in
one write op together with `assert_locked`, so only the current holder can write it: a
resumed old leader's write is refused by the OSD.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import rados

from reconciler.backends.rados_objects import MAX_OBJECT, RadosNamespace
from reconciler.errors import BackendError, Conflict

LOCK_OBJECT = "volctl.leader"
LOCK_NAME = "volctl-leader"
LOCK_EXCLUSIVE = 1
FLAG_MAY_RENEW = 1
FLAG_MUST_RENEW = 2


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<I", len(raw)) + raw


def _envelope(body: bytes) -> bytes:
    return struct.pack("<BBI", 1, 1, len(body)) + body  # ENCODE_START(1, 1)


def lock_op(cookie: str, duration: float, *, flags: int, desc: str = "") -> bytes:
    """cls_lock_lock_op with an exact duration (seconds and nanoseconds)."""
    sec = int(duration)
    nsec = round((duration - sec) * 1e9)
    body = (
        _s(LOCK_NAME)
        + struct.pack("<B", LOCK_EXCLUSIVE)
        + _s(cookie)
        + _s("")  # tag
        + _s(desc)
        + struct.pack("<II", sec, nsec)
        + struct.pack("<B", flags)
    )
    return _envelope(body)


def unlock_op(cookie: str) -> bytes:
    return _envelope(_s(LOCK_NAME) + _s(cookie))


def assert_op(cookie: str) -> bytes:
    return _envelope(_s(LOCK_NAME) + struct.pack("<B", LOCK_EXCLUSIVE) + _s(cookie) + _s(""))


@dataclass(frozen=True)
class LeaderRecord:
    """Who leads (or led last) and at which epoch; the addresses are fenced at takeover."""

    replica: str
    epoch: int
    addresses: tuple[str, ...]
    acquired: float  # unix time of the takeover
    lease: float

    def encode(self) -> bytes:
        return json.dumps(
            {
                "replica": self.replica,
                "epoch": self.epoch,
                "addresses": list(self.addresses),
                "acquired": self.acquired,
                "lease": self.lease,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> LeaderRecord | None:
        try:
            raw: Any = json.loads(data)
            return cls(
                str(raw["replica"]),
                int(raw["epoch"]),
                tuple(str(a) for a in raw.get("addresses", [])),
                float(raw.get("acquired", 0.0)),
                float(raw.get("lease", 0.0)),
            )
        except (ValueError, KeyError, TypeError):
            return None


class RadosLease:
    """The lock object in one namespace; every method raises only typed errors."""

    def __init__(self, objects: RadosNamespace) -> None:
        self.objects = objects

    def _lock(self, cookie: str, duration: float, flags: int, desc: str) -> bool:
        payload = lock_op(cookie, duration, flags=flags, desc=desc)

        def work(io: Any) -> bool:
            try:
                io.execute(LOCK_OBJECT, "lock", "lock", payload)
            except (rados.ObjectBusy, rados.ObjectNotFound, rados.ObjectExists):
                return False
            return True

        ok: bool = self.objects.call("lock", work)
        return ok

    def acquire(self, cookie: str, duration: float, desc: str = "") -> bool:
        """Take the lock if it is free or expired (or renew it if we hold it)."""
        return self._lock(cookie, duration, FLAG_MAY_RENEW, desc)

    def renew(self, cookie: str, duration: float) -> bool:
        """Extend our lock; False when we no longer hold it (it expired, someone took it)."""
        return self._lock(cookie, duration, FLAG_MUST_RENEW, "")

    def release(self, cookie: str) -> None:
        def work(io: Any) -> None:
            try:
                io.execute(LOCK_OBJECT, "lock", "unlock", unlock_op(cookie))
            except (rados.ObjectNotFound, rados.ObjectBusy):
                return

        self.objects.call("unlock", work)

    def record(self) -> LeaderRecord | None:
        stored = self.objects.read(LOCK_OBJECT)
        return None if stored is None else LeaderRecord.decode(stored.data)

    def write_record(self, cookie: str, record: LeaderRecord) -> None:
        """Write the leader record only while holding the lock (Conflict otherwise)."""
        data = record.encode()
        if len(data) > MAX_OBJECT:
            raise BackendError("leader record too large")

        def work(io: Any) -> None:
            with rados.WriteOpCtx() as op:
                op.execute("lock", "assert_locked", assert_op(cookie))
                op.write_full(data)
                try:
                    io.operate_write_op(op, LOCK_OBJECT)
                except (rados.ObjectBusy, rados.ObjectNotFound, rados.PermissionError) as exc:
                    raise Conflict(f"not the lock holder: {exc}") from exc

        self.objects.call("write leader record", work)

    def client_address(self) -> str:
        return self.objects.client_address()

    def blocklist(self, address: str, seconds: int) -> None:
        self.objects.blocklist(address, seconds)
