"""The observed world, as backends report it and the planner consumes it.

Frozen values only: the planner must be able to compare two observations and a simulated
world must be able to produce the same types.  A host that could not be observed is
`reachable=False` with a reason, never an empty host: the planner treats its VMs as unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.identity import MANAGED_BY, META_MANAGED_BY


class DomainState(StrEnum):
    RUNNING = "running"
    SHUTOFF = "shutoff"
    PAUSED = "paused"
    OTHER = "other"


@dataclass(frozen=True)
class OwnerMark:
    """volctl's mark in a domain's <metadata>.  Its absence means the domain is foreign;
    so does a mark that names another installation."""

    name: str
    vmid: int
    spec_hash: str
    epoch: int | None = None  # the HA leader epoch that last defined it (None outside HA)
    # the installation that defined it (identity.Installation.name); None: a mark written
    # before installations were named (ours only if its disks are in our pool)
    installation: str | None = None


@dataclass(frozen=True)
class ObservedDisk:
    target: str  # libvirt <target dev>, e.g. "vda", "sdb"
    rbd_image: str | None  # "pool/image" for RBD network disks, else None
    serial: str | None = None
    # False when the disk is still in the live domain but already gone from the persistent
    # config: a detach was requested and the guest has not released it yet ("detaching").
    persistent: bool = True


@dataclass(frozen=True)
class ObservedNic:
    """A network interface of a domain, as its XML says."""

    mac: str  # lower case, "52:54:00:..."
    kind: str  # libvirt <interface type>: "network", "bridge", "user", ...
    source: str | None  # network or bridge name; None for user-mode
    model: str | None = None
    # False when the NIC is still in the live domain but already gone from the persistent
    # config: an unplug was requested and the guest has not released it yet.
    persistent: bool = True


@dataclass(frozen=True)
class ObservedDomain:
    name: str
    uuid: str
    state: DomainState
    vcpus: int
    memory_mib: int
    # our mark; None: foreign, never touched.  A domain another installation marked is
    # foreign too: the backend reports only marks this installation owns
    # (`identity.Installation.owns`), so nothing downstream can mistake one for ours.
    mark: OwnerMark | None
    disks: tuple[ObservedDisk, ...] = ()  # live disks (persistent config for inactive domains)
    nics: tuple[ObservedNic, ...] = ()  # live NICs (persistent config for inactive domains)
    virt_type: str | None = None  # <domain type>: "kvm", "qemu", "test" (persistent config)
    vnc: str | None = None  # "host:port" of a live VNC display, if any
    console_log: str | None = None  # the serial port's log file on the host
    # disk targets the persistent definition uses, also those of disks only it holds (an
    # attach or detach done halfway): an attach must not pick one of them (R1 defect 6)
    config_targets: frozenset[str] = frozenset()

    @property
    def ours(self) -> bool:
        return self.mark is not None


@dataclass(frozen=True)
class ObservedHost:
    name: str  # the Host resource name
    reachable: bool
    reason: str | None = None  # why it is unknown
    cpus: int = 0
    memory_mib: int = 0
    domains: tuple[ObservedDomain, ...] = ()
    hostname: str | None = None  # what libvirt reports, for display
    # From the host's capabilities: guest architecture -> domain types libvirt offers for it
    # ("kvm", "qemu", ...).  Empty when the capabilities could not be read (nothing filtered).
    guests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def arches(self) -> tuple[str, ...]:
        return tuple(sorted(self.guests))

    def offers(self, arch: str, virt_type: str) -> bool:
        return virt_type in self.guests.get(arch, ())

    def domain(self, name: str) -> ObservedDomain | None:
        for d in self.domains:
            if d.name == name:
                return d
        return None


@dataclass(frozen=True)
class ObservedImage:
    """An RBD image in the managed pool."""

    name: str
    size_bytes: int
    meta: Mapping[str, str] = field(default_factory=dict)  # image-meta; volctl.* keys = ours
    parent: str | None = None  # "pool/image@snap" for clones
    snapshots: tuple[str, ...] = ()
    protected_snapshots: tuple[str, ...] = ()
    watchers: tuple[str, ...] = ()  # client addresses that have the image open
    # volctl's image-meta names another installation (pools shared under explicit
    # `installation:` names): foreign to us, never changed
    other_installation: bool = False

    @property
    def ours(self) -> bool:
        return self.meta.get(META_MANAGED_BY) == MANAGED_BY and not self.other_installation


@dataclass(frozen=True)
class DeletedVolume:
    """A volume volctl deleted (reclaimPolicy Delete), as recorded when it was removed."""

    volumeid: int
    name: str
    size_bytes: int
    deleted_at: str  # ISO 8601 UTC


@dataclass(frozen=True)
class IdLedger:
    """The ids' high-water marks and the deleted volumes, kept in the pool beside the images.

    `vm`/`volume` are the highest vmid/volumeid ever handed out (0 when the ledger does not
    exist yet, as in a deployment from before it: the planner then counts from the ids the
    resources carry, so nothing changes for them).  A new id is above both, so an id never
    comes back after its resource is deleted.
    """

    vm: int = 0
    volume: int = 0
    deleted_volumes: Mapping[int, DeletedVolume] = field(default_factory=dict)  # by volumeid


@dataclass(frozen=True)
class ObservedStorage:
    reachable: bool
    reason: str | None = None
    pool: str = "rbd"
    images: Mapping[str, ObservedImage] = field(default_factory=dict)
    # existing snapshots referenced by Image sources of the form pool/image@snap -> exists?
    external_snapshots: Mapping[str, bool] = field(default_factory=dict)
    ids: IdLedger = field(default_factory=IdLedger)
    # librados/librbd calls this observation made, by kind (for the pass log and benchmarks);
    # not part of the world: two observations of the same pool are equal whatever they cost
    calls: Mapping[str, int] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ObservedWorld:
    hosts: Mapping[str, ObservedHost]
    storage: ObservedStorage

    @property
    def all_hosts_known(self) -> bool:
        return all(h.reachable for h in self.hosts.values())
