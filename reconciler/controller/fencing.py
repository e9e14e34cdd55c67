"""Backends that ask "may I still act?" before every change: the last step of fencing.

Why at this edge: the executor, the handlers and the planner stay unaware of leadership;
whatever they decide, a change reaches libvirt or RBD only through these wrappers, which call
the gate (`Leadership.check`) right before the call.  A replica that is not the leader, or
whose lease may have lapsed by its own clock, raises `Fenced` (a Transient error: the action
is reported and the next leader's pass does it).  Reads (observe) are never gated.

The leader's lease epoch is stamped into the image-meta of every image it creates or marks
(`volctl.epoch`) and into the owner mark of every domain it defines (`<volctl:vm epoch=…>`), so
which leader made what stays visible on the resources themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from reconciler import identity
from reconciler.backends.protocols import DomainEventCallback, Hypervisor, Storage
from reconciler.controller.connections import Connections
from reconciler.model import DesiredState
from reconciler.observe.types import ObservedHost, ObservedStorage, ObservedWorld
from reconciler.payload import DiskSpec, DomainSpec, ImageFile, NicSpec

Gate = Callable[[str], None]  # raises Fenced when this replica may not act


class FencedHypervisor:
    def __init__(self, inner: Hypervisor, gate: Gate, epoch: Callable[[], int]) -> None:
        self.inner = inner
        self.gate = gate
        self.epoch = epoch
        self.name = inner.name

    def observe(self) -> ObservedHost:
        return self.inner.observe()

    def define(self, spec: DomainSpec) -> None:
        self.gate(f"define {spec.name} on {self.name}")
        self.inner.define(replace(spec, epoch=self.epoch()))

    def start(self, name: str) -> None:
        self.gate(f"start {name}")
        self.inner.start(name)

    def shutdown(self, name: str) -> None:
        self.gate(f"shutdown {name}")
        self.inner.shutdown(name)

    def destroy(self, name: str) -> None:
        self.gate(f"destroy {name}")
        self.inner.destroy(name)

    def attach_disk(self, domain: str, disk: DiskSpec) -> None:
        self.gate(f"attach {disk.rbd_image} to {domain}")
        self.inner.attach_disk(domain, disk)

    def detach_disk(self, domain: str, rbd_image: str) -> None:
        self.gate(f"detach {rbd_image} from {domain}")
        self.inner.detach_disk(domain, rbd_image)

    def attach_nic(self, domain: str, nic: NicSpec) -> None:
        self.gate(f"attach a NIC to {domain}")
        self.inner.attach_nic(domain, nic)

    def detach_nic(self, domain: str, mac: str) -> None:
        self.gate(f"detach NIC {mac} from {domain}")
        self.inner.detach_nic(domain, mac)

    def resize_disk(self, domain: str, rbd_image: str, size_bytes: int) -> None:
        self.gate(f"resize {rbd_image} of {domain}")
        self.inner.resize_disk(domain, rbd_image, size_bytes)

    def watch_events(self, callback: DomainEventCallback) -> None:
        self.inner.watch_events(callback)

    def rpc_count(self) -> int:
        return self.inner.rpc_count()

    def close(self) -> None:
        self.inner.close()


class FencedStorage:
    def __init__(self, inner: Storage, gate: Gate, epoch: Callable[[], int]) -> None:
        self.inner = inner
        self.gate = gate
        self.epoch = epoch

    def _stamp(self, meta: dict[str, str]) -> dict[str, str]:
        return {**meta, identity.META_EPOCH: str(self.epoch())}

    def observe(
        self, external_snapshots: tuple[str, ...] = (), held: Mapping[str, str] | None = None
    ) -> ObservedStorage:
        return self.inner.observe(external_snapshots, held)

    def import_image(self, name: str, source: ImageFile, meta: dict[str, str]) -> None:
        self.gate(f"import {name}")
        self.inner.import_image(name, source, self._stamp(meta))

    def clone(self, parent: str, name: str, size_bytes: int, meta: dict[str, str]) -> None:
        self.gate(f"clone {name}")
        self.inner.clone(parent, name, size_bytes, self._stamp(meta))

    def create(self, name: str, size_bytes: int, meta: dict[str, str]) -> None:
        self.gate(f"create {name}")
        self.inner.create(name, size_bytes, self._stamp(meta))

    def resize(self, name: str, size_bytes: int) -> None:
        self.gate(f"resize {name}")
        self.inner.resize(name, size_bytes)

    def set_meta(self, name: str, meta: dict[str, str]) -> None:
        self.gate(f"mark {name}")
        self.inner.set_meta(name, self._stamp(meta))

    def remove(self, name: str) -> None:
        self.gate(f"remove {name}")
        self.inner.remove(name)

    def installation(self) -> identity.Installation:
        return self.inner.installation()

    def close(self) -> None:
        self.inner.close()


class FencedConnections:
    """`Connections` whose hypervisors and storage are fenced by `gate`."""

    def __init__(self, inner: Connections, gate: Gate, epoch: Callable[[], int]) -> None:
        self.inner = inner
        self.gate = gate
        self.epoch = epoch
        self._storage = FencedStorage(inner.storage(), gate, epoch)

    def sync(self, desired: DesiredState) -> None:
        self.inner.sync(desired)

    def hypervisors(self) -> Mapping[str, Hypervisor]:
        return {
            n: FencedHypervisor(hv, self.gate, self.epoch)
            for n, hv in self.inner.hypervisors().items()
        }

    def storage(self) -> Storage:
        return self._storage

    def observe(self, desired: DesiredState) -> ObservedWorld:
        return self.inner.observe(desired)

    def observe_hosts(self, desired: DesiredState) -> dict[str, ObservedHost]:
        return self.inner.observe_hosts(desired)

    def observe_storage(self, desired: DesiredState) -> ObservedStorage:
        return self.inner.observe_storage(desired)

    def close(self) -> None:
        self.inner.close()
