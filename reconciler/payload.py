"""The value types that cross from the planner to the backends.

The planner decides *what* a domain or a disk must look like and the libvirt backend renders
it; both need the same description, so it lives below both (this module imports nothing of
ours).  `CephAccess` says how a guest reaches Ceph: monitor addresses and the libvirt secret's
UUID, never the key itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class CephAccess:
    """How a guest reaches Ceph: monitor addresses and the libvirt secret holding the key.

    The key itself is never part of this (or of any status): it lives in the libvirt secret.
    """

    monitors: tuple[tuple[str, int], ...]  # (host, port)
    auth_user: str  # e.g. "admin"
    secret_uuid: str
    pool: str = "rbd"


class VirtType(StrEnum):
    """libvirt's `<domain type>`: hardware acceleration, or TCG emulation."""

    KVM = "kvm"
    QEMU = "qemu"


class NicKind(StrEnum):
    """libvirt's `<interface type>` for the NIC forms a spec can ask for."""

    NETWORK = "network"  # a libvirt network by name
    BRIDGE = "bridge"  # an existing host bridge by name
    USER = "user"  # user-mode (slirp) networking: needs nothing on the host


@dataclass(frozen=True)
class NicSpec:
    """One virtio NIC: where it is plugged and its deterministic MAC."""

    mac: str
    kind: NicKind
    source: str | None = None  # network or bridge name; None for user-mode


@dataclass(frozen=True)
class DomainSpec:
    """Everything needed to render a managed domain's XML."""

    name: str
    vmid: int
    spec_hash: str
    vcpus: int
    memory_mib: int
    root_image: str  # "pool/image"
    console_log: str  # path of the serial console log file on the host
    ceph: CephAccess
    running: bool = True
    virt_type: VirtType = VirtType.QEMU
    arch: str = "x86_64"
    nics: tuple[NicSpec, ...] = ()
    vnc: bool = False  # a VNC display (listening on all addresses, port chosen by libvirt)
    # lease epoch of the HA leader that defines it, written into the owner mark (set by the
    # fenced hypervisor at the edge, never by the planner; None outside HA)
    epoch: int | None = None


class DiskBus(StrEnum):
    """How a volume is plugged in: virtio-blk (`vdX`; hot-unplug needs the guest OS to
    acknowledge it) or a SCSI disk on the domain's virtio-scsi controller (`sdX`; unplugged
    by qemu alone in ~60 ms, lab notes)."""

    VIRTIO = "virtio"
    SCSI = "scsi"

    def targets(self, count: int) -> tuple[str, ...]:
        """The disk targets volumes may use on this bus (`vda`/`sda` is never one)."""
        letters = "bcdefghijklmnopqrstuvwxyz"[: max(0, min(count, 25))]
        prefix = "sd" if self is DiskBus.SCSI else "vd"
        return tuple(f"{prefix}{c}" for c in letters)


@dataclass(frozen=True)
class DiskSpec:
    """An RBD volume to attach to a domain."""

    rbd_image: str  # "pool/image"
    target: str  # "vdb", "sdb", ...
    serial: str  # stable id the guest can see, e.g. "vol-<volumeid>"
    ceph: CephAccess
    bus: DiskBus = DiskBus.VIRTIO


@dataclass(frozen=True)
class LocalFile:
    """An image file on the controller's machine (raw, or qcow2 converted with qemu-img)."""

    path: str

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class SshFile:
    """A raw image file on another machine, read with `ssh HOST cat PATH` (never copied to
    local disk).  `identity_file`/`known_hosts_file` become ssh's IdentityFile and
    UserKnownHostsFile; host keys are always checked strictly (nothing is added to a file)."""

    host: str  # "user@host" or "host"
    path: str
    port: int | None = None
    identity_file: str | None = None
    known_hosts_file: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.path}"


ImageFile = LocalFile | SshFile  # what ImportImage reads
