"""The desired state, as the loader hands it to everything downstream.

Why a module of its own: `loading` is the only producer and `plan`, `status`, the CLI and
REST are the consumers.  Keeping the types here (frozen, no I/O, no YAML) lets every layer
depend on the model without depending on how it was parsed.

Units follow the seed COL: `cpu` in vCPUs, `ram` in MiB, `disk` and volume `size` in GiB.
Integer ids: `tid`, image `id` are set by users (the seed's files carry them); `pmid` is
optional (hosts without one get the lowest free ids in name order); `vmid` and `volumeid`
are assigned by volctl when the resource is first created and then live on the resource
itself (libvirt metadata / RBD image-meta), so they survive restarts of the controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

API_VERSION = "volctl.io/v1"


class Kind(StrEnum):
    HOST = "Host"
    IMAGE = "Image"
    INSTANCE_TYPE = "InstanceType"
    VIRTUAL_MACHINE = "VirtualMachine"
    VOLUME = "Volume"
    VOLUME_ATTACHMENT = "VolumeAttachment"


class ReclaimPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


@dataclass(frozen=True)
class Origin:
    """Where a document came from, for diagnostics and for `describe`."""

    file: str
    line: int


@dataclass(frozen=True)
class Meta:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    origin: Origin | None = None


class VirtType(StrEnum):
    KVM = "kvm"
    QEMU = "qemu"


class NetworkKind(StrEnum):
    NETWORK = "network"  # a libvirt network by name
    BRIDGE = "bridge"  # a host bridge by name
    USER = "user"  # user-mode networking (slirp): needs nothing on the host


@dataclass(frozen=True)
class Network:
    """One NIC of a VM: `{network: NAME}`, `{bridge: NAME}` or `{user: true}`."""

    kind: NetworkKind
    name: str | None = None  # None for user-mode


# What a VM gets when neither it, its Host nor the config names networks: one user-mode NIC,
# which works on every libvirt host with no setup (the seed's VMs had exactly that).
DEFAULT_NETWORKS = (Network(NetworkKind.USER),)


@dataclass(frozen=True)
class Host:
    meta: Meta
    uri: str
    pmid: int  # resolved: user-given or assigned by the loader
    cpu_capacity: int | None = None  # overrides what libvirt reports, if set
    ram_capacity_mib: int | None = None
    virt_type: VirtType | None = None  # None: kvm where libvirt offers it, else qemu (TCG)
    default_networks: tuple[Network, ...] | None = None  # for VMs that name none
    # host labels live in meta.labels


@dataclass(frozen=True)
class SshSource:
    """A raw image file on another machine, streamed over SSH into RBD (the seed's
    `user@host:/path.img` lines).  The optional files are OpenSSH's IdentityFile and
    UserKnownHostsFile; without them ssh's own configuration of the controller's user applies."""

    host: str  # "user@host" or "host"
    path: str
    port: int | None = None
    identity_file: str | None = None
    known_hosts_file: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.path}"


@dataclass(frozen=True)
class ImageSource:
    """Exactly one of `path` (a local raw/qcow2 file to import), `ssh` (a raw file on another
    machine, streamed in) or `rbd` (pool/image@snap)."""

    path: str | None = None
    rbd: str | None = None
    ssh: SshSource | None = None


@dataclass(frozen=True)
class Image:
    meta: Meta
    id: int
    source: ImageSource
    arch: str = "x86_64"  # libvirt's architecture name; placement needs a host that runs it


@dataclass(frozen=True)
class InstanceType:
    meta: Meta
    tid: int
    cpu: int
    ram: int  # MiB
    disk: int  # GiB


@dataclass(frozen=True)
class VirtualMachine:
    meta: Meta
    instance_type: str
    image: str
    host: str | None = None
    anti_affinity_group: str | None = None
    running: bool = True
    networks: tuple[Network, ...] | None = None  # None: the Host's or the config's default
    vnc: bool = False  # spec.graphics: vnc


@dataclass(frozen=True)
class Volume:
    meta: Meta
    size: int  # GiB
    reclaim_policy: ReclaimPolicy = ReclaimPolicy.RETAIN
    bus: str = "virtio"  # payload.DiskBus's value (schema-checked): applies when attached


@dataclass(frozen=True)
class VolumeAttachment:
    meta: Meta
    volume: str
    vm: str


@dataclass(frozen=True)
class DesiredState:
    """A complete, validated set of documents.  Each mapping is keyed by metadata.name."""

    hosts: Mapping[str, Host] = field(default_factory=dict)
    images: Mapping[str, Image] = field(default_factory=dict)
    instance_types: Mapping[str, InstanceType] = field(default_factory=dict)
    vms: Mapping[str, VirtualMachine] = field(default_factory=dict)
    volumes: Mapping[str, Volume] = field(default_factory=dict)
    attachments: Mapping[str, VolumeAttachment] = field(default_factory=dict)
    revision: str | None = None  # git commit or store digest this state was read at

    def attachment_of_volume(self, volume: str) -> VolumeAttachment | None:
        for att in self.attachments.values():
            if att.volume == volume:
                return att
        return None
