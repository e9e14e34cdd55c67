"""One replica of the HA control plane: lease keeping, takeover, and status publication.

Why: any number of `volctl run` processes may share a RADOS store; exactly one of them, the
holder of the `cls_lock` lease, reconciles, and the others serve the REST view from the
snapshot the leader publishes.  The rules that make "never two actors" hold are in
`controller/leadership.py`; this module does the I/O around them:

* a lease thread (50 ms ticks, I/O only when due) tries the lock every `retry_every` as a
  follower and renews it every `lease/3` as the holder; a takeover reads the previous leader
  record, publishes epoch+1 (written under `assert_locked`), and blocklists the previous
  leader's Ceph clients (`osd blocklist add`), so its in-flight RADOS/RBD writes fail;
* the main thread builds a fresh runtime (new connections, fenced backends) only once the
  role is LEADER (after the previous lease has been waited out) and stops it the moment the
  role is lost;
* the leader publishes each new snapshot, zlib-compressed JSON, to `volctl.status` and
  notifies; followers watch that object and serve the newest snapshot of the highest epoch;
* every replica writes a heartbeat (`volctl.replica.<id>`), the source of "replicas seen".
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog

from reconciler.backends.rados_lease import LeaderRecord
from reconciler.controller.fencing import Gate
from reconciler.controller.leadership import Fenced, Leadership, LeaseSettings, Role
from reconciler.controller.wiring import Runtime
from reconciler.errors import BackendError, Conflict
from reconciler.source.rados_store import Stored
from reconciler.status.codec import CodecError, Published, decode, encode
from reconciler.status.replica import ReplicaInfo, ReplicaSeen
from reconciler.status.store import StatusStore
from reconciler.status.types import Snapshot

log = structlog.get_logger("volctl.ha")

STATUS_OBJECT = "volctl.status"
HEARTBEAT_PREFIX = "volctl.replica."
TICK = 0.05


class LeaseBackend(Protocol):
    def acquire(self, cookie: str, duration: float, desc: str = "") -> bool: ...
    def renew(self, cookie: str, duration: float) -> bool: ...
    def release(self, cookie: str) -> None: ...
    def record(self) -> LeaderRecord | None: ...
    def write_record(self, cookie: str, record: LeaderRecord) -> None: ...
    def client_address(self) -> str: ...
    def blocklist(self, address: str, seconds: int) -> None: ...


class SharedObjects(Protocol):
    def put(self, name: str, data: bytes) -> None: ...
    def read(self, name: str) -> Stored | None: ...
    def names(self, prefix: str = "") -> list[str]: ...
    def read_many(self, names: list[str]) -> Sequence[Stored]: ...
    def notify(self, name: str, message: str = "", timeout_ms: int = 1000) -> None: ...
    def watch(self, name: str, on_notify: Callable[[bytes], None]) -> None: ...


# builds a leader's runtime: (status store to publish into, gate, epoch, hook called with the
# address of every new Ceph connection of its storage) -> Runtime
Builder = Callable[[StatusStore, Gate, Callable[[], int], Callable[[str], None]], Runtime]


@dataclass(frozen=True)
class ReplicaSettings:
    replica_id: str
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    blocklist_seconds: int = 3600
    store: str = ""


class _Publishing(StatusStore):
    """The leader's status store: every update is handed to the publisher."""

    def __init__(self, initial: Snapshot, on_update: Callable[[Snapshot], None]) -> None:
        super().__init__(initial)
        self._on_update = on_update

    def update(self, fn: Callable[[Snapshot], Snapshot]) -> Snapshot:
        snap = super().update(fn)
        self._on_update(snap)
        return snap


class Replica:
    def __init__(
        self,
        settings: ReplicaSettings,
        lease: LeaseBackend,
        objects: SharedObjects,
        build: Builder,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.lease = lease
        self.objects = objects
        self.build = build
        self.clock = clock
        self.wall = wall
        self.leadership = Leadership(settings.lease, clock)
        self.cookie = f"{settings.replica_id}.{int(wall() * 1000) % 10**9}"
        self.view = StatusStore()
        self.published: Published | None = None
        self.leader: str | None = None
        self.max_epoch = 0
        self.replicas: tuple[ReplicaSeen, ...] = ()
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._status_due = threading.Event()
        self._to_publish: Snapshot | None = None
        self._publish_due = threading.Condition()
        self._record: LeaderRecord | None = None
        self._next_try = 0.0
        self._next_beat = 0.0

    # ---- what the REST view serves -----------------------------------------------------------

    def snapshot(self) -> Snapshot:
        self.leadership.tick()
        rt = self._runtime
        if rt is not None and self.leadership.is_holder():
            return rt.store.snapshot()
        return self.view.snapshot()

    def wait_newer(self, generation: int, timeout: float) -> Snapshot | None:
        """Block until the snapshot this replica serves has a generation other than
        `generation` (the REST long poll).  Waits on the store it serves now, and looks again
        at least every second, since leadership may move it to the other store."""
        deadline = self.clock() + timeout
        while True:
            rt = self._runtime
            store = rt.store if rt is not None and self.leadership.is_holder() else self.view
            left = deadline - self.clock()
            snap = store.wait_newer(generation, max(0.0, min(1.0, left)))
            if snap is not None or left <= 1.0:
                return snap

    def info(self) -> ReplicaInfo:
        self.leadership.tick()
        v = self.leadership.view()
        pub = self.published
        expires: float | None = None
        if v.role in (Role.LEADER, Role.TAKING_OVER):
            expires = self.wall() + v.valid_for + self.settings.lease.safety
        else:
            expires = next(
                (r.lease_expires for r in self.replicas if r.replica == self.leader), None
            )
        return ReplicaInfo(
            replica=self.settings.replica_id,
            role=v.role.value,
            epoch=max(v.epoch, self.max_epoch),
            leader=self.settings.replica_id if v.role is Role.LEADER else self.leader,
            lease_seconds=self.settings.lease.lease,
            lease_expires=expires,
            takeovers=self.leadership.takeovers,
            reason=v.reason,
            store=self.settings.store,
            snapshot_from=pub.replica if pub else None,
            snapshot_epoch=pub.epoch if pub else None,
            snapshot_published=pub.published if pub else None,
            replicas=self.replicas,
        )

    # ---- lifecycle ----------------------------------------------------------------------------

    def run(self) -> None:
        """Run until stop(): follow, and lead whenever this replica holds the lease."""
        threads = [
            threading.Thread(target=self._lease_loop, name="ha-lease", daemon=True),
            threading.Thread(target=self._status_loop, name="ha-status", daemon=True),
            threading.Thread(target=self._publish_loop, name="ha-publish", daemon=True),
        ]
        for t in threads:
            t.start()
        log.info("ha.start", replica=self.settings.replica_id, lease=self.settings.lease.lease)
        try:
            while not self._stop.is_set():
                if self.leadership.tick() is not Role.LEADER:
                    self._stop.wait(TICK)
                    continue
                self._lead()
        finally:
            self._stop.set()
            with self._publish_due:
                self._publish_due.notify_all()
            self._status_due.set()
            if self.leadership.is_holder():
                with contextlib.suppress(BackendError):
                    self.lease.release(self.cookie)
                log.info("ha.released", replica=self.settings.replica_id)
            for t in threads:
                t.join(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        rt = self._runtime
        if rt is not None:
            rt.controller.stop()

    def _lead(self) -> None:
        """One term as leader: a fresh runtime, run until the role is lost or stop()."""
        epoch = self.leadership.epoch
        status = _Publishing(self.view.snapshot(), self._queue_publish)
        rt = self.build(status, self._gate, lambda: epoch, self._storage_connected)
        with self._lock:
            self._runtime = rt
        log.info("ha.leading", replica=self.settings.replica_id, epoch=epoch)
        try:
            rt.controller.watch_source()
            if self.leadership.may_act() and not self._stop.is_set():
                rt.controller.run()
        finally:
            with self._lock:
                self._runtime = None
            rt.close()
            log.info("ha.term_end", replica=self.settings.replica_id, epoch=epoch)

    def _gate(self, what: str) -> None:
        """Before every change: refuse (Fenced) unless we may act; log what we do."""
        try:
            self.leadership.check(what)
        except Exception:
            log.warning("ha.fenced", replica=self.settings.replica_id, what=what)
            raise
        log.info("ha.act", replica=self.settings.replica_id, epoch=self.leadership.epoch, what=what)

    def _storage_connected(self, address: str) -> None:
        """Every new Ceph connection of the leader's storage: allowed only while we may act,
        and recorded in the leader record first, so a successor blocklists it too.  (A
        backend reconnects after a lost connection; without this a call queued before a
        pause could run on a fresh, unfenced connection after it.)"""
        self._gate(f"connect to Ceph as {address}")
        rec = self._record
        if rec is None or rec.epoch != self.leadership.epoch:
            raise Fenced(f"no leader record of epoch {self.leadership.epoch}")
        rec = replace(rec, addresses=(*rec.addresses, address))
        try:
            self.lease.write_record(self.cookie, rec)
        except BackendError as exc:
            raise Fenced(f"cannot record the Ceph client {address}: {exc}") from exc
        self._record = rec
        log.info("ha.storage_client", replica=self.settings.replica_id, address=address)

    # ---- the lease ----------------------------------------------------------------------------

    def _lease_loop(self) -> None:
        while not self._stop.is_set():
            role = self.leadership.tick()
            holder = role in (Role.LEADER, Role.TAKING_OVER)
            if not holder:
                self._stop_runtime()
            now = self.clock()
            try:
                if holder and now >= self.leadership.renew_due():
                    self._renew()
                elif not holder and now >= self._next_try:
                    self._next_try = now + self.settings.lease.retry_every
                    self._try_acquire()
                if now >= self._next_beat:
                    self._next_beat = now + self.settings.lease.retry_every
                    self._heartbeat()
            except BackendError as exc:
                self.leadership.unavailable(f"Ceph unreachable: {exc}")
                log.warning("ha.ceph_unreachable", error=str(exc))
                self._next_try = self.clock() + self.settings.lease.retry_every
            self._stop.wait(TICK)

    def _stop_runtime(self) -> None:
        rt = self._runtime
        if rt is not None and not rt.controller.triggers.stopped:
            log.warning("ha.lost", replica=self.settings.replica_id, reason=self.leadership.reason)
            rt.controller.stop()

    def _renew(self) -> None:
        sent = self.clock()
        if self.lease.renew(self.cookie, self.settings.lease.lease):
            self.leadership.renewed(sent)
        else:
            self.leadership.lost("lease lost: it expired or another replica holds it")
            self._stop_runtime()

    def _try_acquire(self) -> None:
        sent = self.clock()
        if not self.lease.acquire(self.cookie, self.settings.lease.lease, self.settings.replica_id):
            rec = self.lease.record()
            if rec is not None:
                self.leader = rec.replica
                self.max_epoch = max(self.max_epoch, rec.epoch)
            self.leadership.follower(f"following {self.leader or 'an unknown leader'}")
            return
        self._take_over(sent)

    def _take_over(self, sent: float) -> None:
        prev = self.lease.record()
        epoch = max(prev.epoch if prev else 0, self.max_epoch) + 1
        mine = self.lease.client_address()
        record = LeaderRecord(
            self.settings.replica_id, epoch, (mine,), self.wall(), self.settings.lease.lease
        )
        try:
            self.lease.write_record(self.cookie, record)
        except Conflict as exc:
            self.leadership.lost(f"takeover failed: {exc}")
            return
        self._record = record
        fenced = [a for a in (prev.addresses if prev else ()) if a != mine]
        for address in fenced:
            try:
                self.lease.blocklist(address, self.settings.blocklist_seconds)
            except BackendError as exc:  # the lease wait alone still fences it
                log.warning("ha.blocklist_failed", address=address, error=str(exc))
        self.leadership.acquired(sent, epoch)
        self.leader = self.settings.replica_id
        self.max_epoch = epoch
        log.info(
            "ha.takeover",
            replica=self.settings.replica_id,
            epoch=epoch,
            previous=prev.replica if prev else None,
            blocklisted=fenced,
            acts_in=self.settings.lease.lease,
        )

    def _heartbeat(self) -> None:
        v = self.leadership.view()
        expires = (
            self.wall() + v.valid_for + self.settings.lease.safety
            if v.role in (Role.LEADER, Role.TAKING_OVER)
            else None
        )
        epoch = max(v.epoch, self.max_epoch)  # a follower reports the epoch it follows
        beat = {"role": v.role.value, "epoch": epoch, "time": self.wall(), "expires": expires}
        self.objects.put(HEARTBEAT_PREFIX + self.settings.replica_id, json.dumps(beat).encode())
        horizon = self.wall() - 3 * self.settings.lease.lease
        seen: list[ReplicaSeen] = []
        for s in self.objects.read_many(self.objects.names(HEARTBEAT_PREFIX)):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                raw = json.loads(s.data)
                if float(raw["time"]) >= horizon:
                    seen.append(
                        ReplicaSeen(
                            s.name.removeprefix(HEARTBEAT_PREFIX),
                            str(raw["role"]),
                            int(raw["epoch"]),
                            float(raw["time"]),
                            raw.get("expires"),
                        )
                    )
        self.replicas = tuple(seen)

    # ---- status publication -------------------------------------------------------------------

    def _queue_publish(self, snap: Snapshot) -> None:
        with self._publish_due:
            self._to_publish = snap
            self._publish_due.notify_all()

    def _publish_loop(self) -> None:
        last_gen = -1
        while not self._stop.is_set():
            with self._publish_due:
                while self._to_publish is None and not self._stop.is_set():
                    self._publish_due.wait(1.0)
                snap, self._to_publish = self._to_publish, None
            if snap is None or snap.generation == last_gen or not self.leadership.is_holder():
                continue
            pub = Published(snap, self.leadership.epoch, self.settings.replica_id, self.wall())
            try:
                self.objects.put(STATUS_OBJECT, encode(pub))
                self.objects.notify(STATUS_OBJECT, str(pub.epoch))
            except BackendError as exc:
                log.warning("ha.publish_failed", error=str(exc))
                continue
            last_gen = snap.generation
            self._accept(pub)

    def _status_loop(self) -> None:
        try:
            self.objects.watch(STATUS_OBJECT, lambda _msg: self._status_due.set())
        except BackendError as exc:
            log.warning("ha.watch_failed", error=str(exc))
        while not self._stop.is_set():
            if not self.leadership.is_holder():
                self._read_status()
            self._status_due.wait(self.settings.lease.lease)
            self._status_due.clear()

    def _read_status(self) -> None:
        try:
            stored = self.objects.read(STATUS_OBJECT)
        except BackendError as exc:
            log.warning("ha.status_read_failed", error=str(exc))
            return
        if stored is None or not stored.data:
            return
        try:
            pub = decode(stored.data)
        except CodecError as exc:
            log.warning("ha.status_undecodable", error=str(exc))
            return
        self._accept(pub)

    def _accept(self, pub: Published) -> None:
        """Serve `pub` unless a newer epoch has been seen (a fenced leader's late write)."""
        with self._lock:
            if pub.epoch < self.max_epoch or (
                self.published is not None
                and pub.epoch == self.published.epoch
                and pub.snapshot.generation < self.published.snapshot.generation
            ):
                return
            self.max_epoch = pub.epoch
            self.published = pub
            if not self.leadership.is_holder():
                self.leader = pub.replica
        self.view.publish(pub.snapshot)
