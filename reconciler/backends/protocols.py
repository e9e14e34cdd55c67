"""What the rest of volctl needs from a hypervisor and from storage, as Protocols.

The observer and executor are written against these; `libvirt_backend` and `rbd_backend`
implement them for real, and tests may implement them with a simulated world.  Every method
either succeeds or raises one of `reconciler.errors` (never a library exception), and every
implementation bounds each call with a timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from reconciler.identity import Installation
from reconciler.observe.types import ObservedHost, ObservedStorage
from reconciler.payload import DiskSpec, DomainSpec, ImageFile, NicSpec


class EventKind:
    LIFECYCLE = "lifecycle"
    DEVICE_REMOVED = "device-removed"
    DEVICE_ADDED = "device-added"
    CONNECTION_LOST = "connection-lost"
    CONNECTION_RESTORED = "connection-restored"  # events were missed meanwhile: look again


DomainEventCallback = Callable[[str, str, str], None]  # (host, event kind, domain name)


class Hypervisor(Protocol):
    """One libvirt host."""

    name: str

    def observe(self) -> ObservedHost:
        """Capacity and domains.  Cheap when nothing changed (cached per domain UUID)."""
        ...

    def define(self, spec: DomainSpec) -> None:
        """Ensure a domain with this name and mark exists (redefine if the spec changed)."""
        ...

    def start(self, name: str) -> None: ...

    def shutdown(self, name: str) -> None:
        """Power off (hard stop) without undefining."""
        ...

    def destroy(self, name: str) -> None:
        """Stop and undefine one of *our* domains.  NotFound if already gone."""
        ...

    def attach_disk(self, domain: str, disk: DiskSpec) -> None:
        """Live (if running) and persistent attach.  Idempotent."""
        ...

    def detach_disk(self, domain: str, rbd_image: str) -> None:
        """Request detach (live and persistent).  Completion is observed, not assumed."""
        ...

    def resize_disk(self, domain: str, rbd_image: str, size_bytes: int) -> None:
        """Tell a running guest that an attached disk grew (virDomainBlockResize)."""
        ...

    def attach_nic(self, domain: str, nic: NicSpec) -> None:
        """Live (if running) and persistent interface hot-plug.  Idempotent (keyed by MAC)."""
        ...

    def detach_nic(self, domain: str, mac: str) -> None:
        """Request the NIC's unplug (live and persistent).  Completion is observed."""
        ...

    def watch_events(self, callback: DomainEventCallback) -> None:
        """Register for lifecycle and device events; callback runs on the event thread."""
        ...

    def rpc_count(self) -> int:
        """libvirt RPCs made so far (for benchmarks and the O(hosts) steady-state check)."""
        ...

    def close(self) -> None: ...


class Storage(Protocol):
    """The managed RBD pool, and the id ledger kept in it.

    The ledger (`ObservedStorage.ids`) makes ids one-way: `clone`/`create` of an image whose
    meta marks a root disk or volume with its `volctl.id` first raise that kind's high-water
    mark to the id, and `remove` of a volume first records it as deleted (for the seed's
    `"status": "deleted"`).  A pool without a ledger reads as all marks 0.
    """

    def observe(
        self,
        external_snapshots: tuple[str, ...] = (),
        held: Mapping[str, str] | None = None,
    ) -> ObservedStorage:
        """Every image in the pool, and the id ledger's marks (one read op).

        `held` maps the images that running domains on reachable hosts hold (by image name
        in this pool) to a token naming the holders.  An implementation may serve those
        from an earlier read while nothing says they changed and the token is the same;
        every other image (its attachment is in doubt) is read now, watchers included.
        None means nothing is known about attachments: read everything."""
        ...

    def import_image(self, name: str, source: ImageFile, meta: dict[str, str]) -> None:
        """Import a local file, or stream a remote one over SSH, as RBD image `name`; then
        snapshot and protect BASE_SNAPSHOT."""
        ...

    def clone(self, parent: str, name: str, size_bytes: int, meta: dict[str, str]) -> None:
        """COW clone of "pool/image@snap" into `name`, grown to size_bytes, with image-meta."""
        ...

    def create(self, name: str, size_bytes: int, meta: dict[str, str]) -> None: ...

    def resize(self, name: str, size_bytes: int) -> None:
        """Grow only; the caller never asks to shrink."""
        ...

    def set_meta(self, name: str, meta: dict[str, str]) -> None: ...

    def remove(self, name: str) -> None:
        """Remove one of *our* images (NotFound if gone; Transient while it has watchers).

        A volume is recorded in the id ledger as deleted before it goes."""
        ...

    def installation(self) -> Installation:
        """This installation: the name its ownership marks carry and its pool (the default
        name is "<fsid>/<pool>", so it may need Ceph: a BackendError while unreachable)."""
        ...

    def close(self) -> None: ...
