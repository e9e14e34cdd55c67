"""The knobs of a planning pass, injected so that `plan()` stays a pure function.

Everything the planner needs beyond (desired, observed) lives here: how guests reach Ceph
(copied into every DomainSpec and DiskSpec), where serial consoles are logged on the hosts,
and the thresholds of the safety guards.  The controller builds one from its Config; tests
build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model import Network
from reconciler.payload import CephAccess, DiskBus

# vda is the root disk; volumes go to the first free of vdb..vdz.
DEFAULT_MAX_TARGETS = 25


@dataclass(frozen=True)
class PlanSettings:
    ceph: CephAccess
    console_dir: str = "/var/log/libvirt/qemu"
    # NICs of VMs whose spec and Host name none (None: model.DEFAULT_NETWORKS)
    default_networks: tuple[Network, ...] | None = None
    # If a plan would delete more than this share of the managed resources (VMs + volumes)
    # and more than one resource, it deletes nothing unless allow_mass_delete is set.
    delete_guard_ratio: float = 0.5
    allow_mass_delete: bool = False
    # how many volume disks a domain may carry (targets vdb, vdc, ... in order)
    max_targets: int = DEFAULT_MAX_TARGETS

    @property
    def pool(self) -> str:
        return self.ceph.pool

    def rbd(self, image: str) -> str:
        """ "pool/image" for an image in the managed pool."""
        return f"{self.ceph.pool}/{image}"

    def console_log(self, vm: str) -> str:
        """`<console_dir>/<vm>+console.log`: the '+' (never in a name) keeps it apart from
        qemu's own `<domain>.log` when console_dir is libvirt's log dir."""
        return f"{self.console_dir.rstrip('/')}/{vm}+console.log"

    def targets(self, bus: DiskBus = DiskBus.VIRTIO) -> tuple[str, ...]:
        return bus.targets(self.max_targets)
