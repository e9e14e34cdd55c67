"""An in-memory world implementing the Hypervisor and Storage Protocols, for executor logic.

It enforces the physics the executor must respect (a domain needs its root image, an attach
needs the volume and the domain, an image with a watcher cannot be removed), so tests can
assert the final state instead of the calls made.  Failures, slowness and a detach that the
guest never acknowledges can be injected.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.backends.protocols import DomainEventCallback, EventKind
from reconciler.errors import Conflict, NotFound, Transient
from reconciler.identity import (
    MANAGED_BY,
    META_ID,
    META_KIND,
    META_MANAGED_BY,
    META_NAME,
    Installation,
)
from reconciler.observe.types import (
    DeletedVolume,
    DomainState,
    IdLedger,
    ObservedDisk,
    ObservedDomain,
    ObservedHost,
    ObservedImage,
    ObservedNic,
    ObservedStorage,
    OwnerMark,
)
from reconciler.payload import CephAccess, DiskSpec, DomainSpec, ImageFile, NicSpec

CEPH = CephAccess(monitors=(("127.0.0.1", 6789),), auth_user="admin", secret_uuid="u-1")


@dataclass
class FakeDomain:
    spec: DomainSpec | None  # None: foreign
    running: bool = False
    disks: dict[str, str] = field(default_factory=dict)  # rbd image -> target
    detaching: set[str] = field(default_factory=set)  # requested, still in the live domain
    vcpus: int = 1
    memory_mib: int = 512
    nics: dict[str, NicSpec] = field(default_factory=dict)  # mac -> NIC


class Injector:
    """Errors to raise and delays to add, per (method, subject)."""

    def __init__(self) -> None:
        self.errors: dict[tuple[str, str], list[BaseException]] = defaultdict(list)
        self.delay: float = 0.0
        self.calls: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def enter(self, method: str, subject: str) -> None:
        with self.lock:
            self.calls[(method, subject)] += 1
            queue = self.errors.get((method, subject))
            err = queue.pop(0) if queue else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            if err is not None:
                raise err  # noqa: TRY301 - the injected failure
        except BaseException:
            self.exit()
            raise

    def exit(self) -> None:
        with self.lock:
            self.in_flight -= 1


FAKE_INSTALLATION = "fake-installation"


class FakeStorage:
    def __init__(self, pool: str = "rbd", inject: Injector | None = None) -> None:
        self.pool = pool
        self.images: dict[str, ObservedImage] = {}
        self.inject = inject or Injector()
        self.watchers: dict[str, set[str]] = defaultdict(set)
        self.lock = threading.Lock()
        self.reachable = True
        # the id ledger, as RbdStorage keeps it in the pool (backends/id_ledger.py)
        self.hwm: dict[str, int] = {"vm": 0, "volume": 0}
        self.deleted: dict[int, DeletedVolume] = {}

    def _call(self, method: str, name: str) -> None:
        if not self.reachable:
            raise Transient("ceph: connection timed out")
        self.inject.enter(method, name)
        self.inject.exit()

    def add_base(self, name: str, snap: str = "base") -> None:
        """A foreign image with a protected snapshot (like the lab's base image)."""
        self.images[name] = ObservedImage(name, 1 << 30, {}, None, (snap,), (snap,))

    def observe(
        self, external_snapshots: tuple[str, ...] = (), held: Mapping[str, str] | None = None
    ) -> ObservedStorage:
        del held  # a simulated pool reads everything every time
        with self.lock:
            imgs = {
                n: ObservedImage(
                    i.name,
                    i.size_bytes,
                    dict(i.meta),
                    i.parent,
                    i.snapshots,
                    i.protected_snapshots,
                    tuple(sorted(self.watchers[n])),
                )
                for n, i in self.images.items()
            }
        external = {}
        for ref in external_snapshots:
            base, _, snap = ref.partition("@")
            img = imgs.get(base.split("/", 1)[-1])
            external[ref] = img is not None and snap in img.snapshots
        if not self.reachable:
            raise Transient("ceph: connection timed out")
        ids = IdLedger(self.hwm["vm"], self.hwm["volume"], dict(self.deleted))
        return ObservedStorage(
            reachable=True, pool=self.pool, images=imgs, external_snapshots=external, ids=ids
        )

    def _add(
        self,
        name: str,
        size: int,
        meta: dict[str, str],
        parent: str | None = None,
        snaps: tuple[str, ...] = (),
    ) -> None:
        with self.lock:
            if name in self.images:
                raise Conflict(f"image {name} exists")
            kind = {"root": "vm", "volume": "volume"}.get(meta.get(META_KIND, ""))
            if kind is not None and meta.get(META_ID, "").isdigit():  # advanced before creating
                self.hwm[kind] = max(self.hwm[kind], int(meta[META_ID]))
            self.images[name] = ObservedImage(name, size, meta, parent, snaps, snaps)

    def import_image(self, name: str, source: ImageFile, meta: dict[str, str]) -> None:
        self._call("import_image", name)
        self._add(name, 1 << 30, meta, snaps=("volctl-base",))

    def clone(self, parent: str, name: str, size_bytes: int, meta: dict[str, str]) -> None:
        self._call("clone", name)
        base, _, snap = parent.partition("@")
        img = self.images.get(base.split("/", 1)[-1])
        if img is None or snap not in img.snapshots:
            raise NotFound(f"parent {parent} not found")
        self._add(name, size_bytes, meta, parent=parent)

    def create(self, name: str, size_bytes: int, meta: dict[str, str]) -> None:
        self._call("create", name)
        self._add(name, size_bytes, meta)

    def resize(self, name: str, size_bytes: int) -> None:
        self._call("resize", name)
        with self.lock:
            img = self.images.get(name)
            if img is None:
                raise NotFound(name)
            assert size_bytes >= img.size_bytes, "never shrink"
            self.images[name] = ObservedImage(
                name, size_bytes, img.meta, img.parent, img.snapshots, img.protected_snapshots
            )

    def set_meta(self, name: str, meta: dict[str, str]) -> None:
        self._call("set_meta", name)
        with self.lock:
            img = self.images[name]
            self.images[name] = ObservedImage(
                name,
                img.size_bytes,
                {**img.meta, **meta},
                img.parent,
                img.snapshots,
                img.protected_snapshots,
            )

    def remove(self, name: str) -> None:
        self._call("remove", name)
        with self.lock:
            if name not in self.images:
                raise NotFound(name)
            if self.watchers[name]:
                raise Transient(f"image {name} has watchers")
            img = self.images[name]
            if img.meta.get(META_MANAGED_BY) != MANAGED_BY:
                raise Conflict(f"image {name} is not ours")
            if img.meta.get(META_KIND) == "volume" and img.meta.get(META_ID, "").isdigit():
                vid = int(img.meta[META_ID])
                self.deleted[vid] = DeletedVolume(
                    vid, img.meta.get(META_NAME, name), img.size_bytes, "2026-01-01T00:00:00Z"
                )
                self.hwm["volume"] = max(self.hwm["volume"], vid)
            del self.images[name]

    def installation(self) -> Installation:
        return Installation(FAKE_INSTALLATION, self.pool)

    def close(self) -> None:
        pass


class FakeHypervisor:
    def __init__(
        self,
        name: str,
        storage: FakeStorage,
        *,
        cpus: int = 8,
        memory_mib: int = 8192,
        inject: Injector | None = None,
    ) -> None:
        self.name = name
        self.storage = storage
        self.cpus = cpus
        self.memory_mib = memory_mib
        self.domains: dict[str, FakeDomain] = {}
        self.inject = inject or Injector()
        self.lock = threading.RLock()
        self.callbacks: list[DomainEventCallback] = []
        self.reachable = True
        self.guest_acks_detach = True  # False: virtio without a guest OS, stays "detaching"
        self.rpcs = 0

    def _call(self, method: str, subject: str) -> None:
        if not self.reachable:
            raise Transient(f"{self.name}: connection refused")
        self.rpcs += 1
        self.inject.enter(method, f"{self.name}/{subject}")
        self.inject.exit()

    def _rbd(self, image: str) -> str:
        return image.split("/", 1)[-1]

    def observe(self) -> ObservedHost:
        if not self.reachable:
            return ObservedHost(self.name, reachable=False, reason="connection refused")
        self.rpcs += 1
        with self.lock:
            doms = tuple(
                ObservedDomain(
                    name=n,
                    uuid=f"uuid-{n}",
                    state=DomainState.RUNNING if d.running else DomainState.SHUTOFF,
                    vcpus=d.spec.vcpus if d.spec else d.vcpus,
                    memory_mib=d.spec.memory_mib if d.spec else d.memory_mib,
                    mark=OwnerMark(n, d.spec.vmid, d.spec.spec_hash) if d.spec else None,
                    disks=tuple(
                        ObservedDisk(
                            t, f"{self.storage.pool}/{img}", persistent=img not in d.detaching
                        )
                        for img, t in sorted(d.disks.items())
                    ),
                    nics=tuple(
                        ObservedNic(m, n.kind.value, n.source, "virtio") for m, n in d.nics.items()
                    ),
                )
                for n, d in sorted(self.domains.items())
            )
        return ObservedHost(
            self.name,
            True,
            cpus=self.cpus,
            memory_mib=self.memory_mib,
            domains=doms,
            hostname=self.name,
        )

    def define(self, spec: DomainSpec) -> None:
        self._call("define", spec.name)
        with self.lock:
            if self._rbd(spec.root_image) not in self.storage.images:
                raise NotFound(f"root image {spec.root_image} missing")
            d = self.domains.get(spec.name)
            if d is not None and d.spec is None:
                raise Conflict(f"domain {spec.name} exists and is not ours")
            if d is None:
                self.domains[spec.name] = FakeDomain(spec, nics={n.mac: n for n in spec.nics})
            else:
                d.spec = spec
                if not d.running:  # the persistent config is what an inactive domain shows
                    d.nics = {n.mac: n for n in spec.nics}

    def attach_nic(self, domain: str, nic: NicSpec) -> None:
        self._call("attach_nic", domain)
        with self.lock:
            d = self.domains.get(domain)
            if d is None:
                raise NotFound(domain)
            d.nics.setdefault(nic.mac, nic)

    def detach_nic(self, domain: str, mac: str) -> None:
        self._call("detach_nic", domain)
        with self.lock:
            d = self.domains.get(domain)
            if d is None or mac not in d.nics:
                raise NotFound(f"no NIC {mac} on {domain}")
            del d.nics[mac]

    def start(self, name: str) -> None:
        self._call("start", name)
        with self.lock:
            d = self.domains.get(name)
            if d is None:
                raise NotFound(name)
            if d.running:
                raise Conflict(f"{name} already running")
            d.running = True
            for img in d.disks:
                self.storage.watchers[img].add(f"{self.name}:{name}")
            assert d.spec is not None
            self.storage.watchers[self._rbd(d.spec.root_image)].add(f"{self.name}:{name}")

    def shutdown(self, name: str) -> None:
        self._call("shutdown", name)
        with self.lock:
            d = self.domains.get(name)
            if d is None:
                raise NotFound(name)
            self._stop(name, d)

    def _stop(self, name: str, d: FakeDomain) -> None:
        d.running = False
        for watchers in self.storage.watchers.values():
            watchers.discard(f"{self.name}:{name}")

    def destroy(self, name: str) -> None:
        self._call("destroy", name)
        with self.lock:
            d = self.domains.get(name)
            if d is None:
                raise NotFound(name)
            if d.spec is None:
                raise Conflict(f"{name} is foreign")
            self._stop(name, d)
            del self.domains[name]
        self._emit(EventKind.LIFECYCLE, name)

    def attach_disk(self, domain: str, disk: DiskSpec) -> None:
        self._call("attach_disk", domain)
        img = self._rbd(disk.rbd_image)
        with self.lock:
            d = self.domains.get(domain)
            if d is None:
                raise NotFound(domain)
            if img not in self.storage.images:
                raise NotFound(disk.rbd_image)
            d.disks[img] = disk.target
            if d.running:
                self.storage.watchers[img].add(f"{self.name}:{domain}")

    def detach_disk(self, domain: str, rbd_image: str) -> None:
        self._call("detach_disk", domain)
        img = self._rbd(rbd_image)
        with self.lock:
            d = self.domains.get(domain)
            if d is None or img not in d.disks:
                raise NotFound(f"{rbd_image} not attached to {domain}")
            if d.running and not self.guest_acks_detach:
                d.detaching.add(img)
                return
        threading.Timer(0.05, self.complete_detach, args=(domain, img)).start()

    def complete_detach(self, domain: str, img: str) -> None:
        """The guest released the disk (the DEVICE_REMOVED moment)."""
        with self.lock:
            d = self.domains.get(domain)
            if d is None:
                return
            d.disks.pop(img, None)
            d.detaching.discard(img)
            for w in self.storage.watchers.get(img, set()).copy():
                if w == f"{self.name}:{domain}":
                    self.storage.watchers[img].discard(w)
        self._emit(EventKind.DEVICE_REMOVED, domain)

    def resize_disk(self, domain: str, rbd_image: str, size_bytes: int) -> None:
        self._call("resize_disk", domain)
        with self.lock:
            d = self.domains.get(domain)
            if d is None or self._rbd(rbd_image) not in d.disks:
                raise NotFound(f"{rbd_image} not attached to {domain}")
            self.resized = (domain, rbd_image, size_bytes)

    def watch_events(self, callback: DomainEventCallback) -> None:
        self.callbacks.append(callback)

    def _emit(self, kind: str, domain: str) -> None:
        for cb in list(self.callbacks):
            cb(self.name, kind, domain)

    def rpc_count(self) -> int:
        return self.rpcs

    def close(self) -> None:
        pass

    # out-of-band changes, as an operator with virsh would make them
    def add_foreign(self, name: str, vcpus: int = 1, memory_mib: int = 256) -> None:
        with self.lock:
            self.domains[name] = FakeDomain(None, True, vcpus=vcpus, memory_mib=memory_mib)

    def undefine_behind_our_back(self, name: str) -> None:
        with self.lock:
            d = self.domains.pop(name)
            self._stop(name, d)
        self._emit(EventKind.LIFECYCLE, name)
