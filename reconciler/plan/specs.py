"""How desired resources turn into payloads: DomainSpecs, image-meta, spec hashes, labels.

Kept apart from the rules so that every rule module builds the same DomainSpec for the
same VM, and so that the meta written on images and the hash compared against the owner
mark are defined once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from reconciler import identity
from reconciler.model import (
    DEFAULT_NETWORKS,
    Host,
    Image,
    InstanceType,
    Network,
    VirtualMachine,
    Volume,
)
from reconciler.observe.types import ObservedDomain, ObservedHost, ObservedImage, OwnerMark
from reconciler.payload import DomainSpec, NicKind, NicSpec, VirtType
from reconciler.plan.actions import Meta
from reconciler.plan.settings import PlanSettings
from reconciler.plan.world import active

GIB = 1 << 30


def vm_hash(
    itype: InstanceType,
    image: Image,
    virt_type: VirtType = VirtType.QEMU,
    *,
    vnc: bool = False,
) -> str:
    """The VM spec hash stored in the owner mark: what the domain and root disk are made of.

    NICs are not part of it: they are hot-plugged by their own actions, not redefined.
    Fields added after the first release enter the hash only when they differ from their
    default, so VMs made before them keep their hash (and are not redefined for nothing).
    """
    return _vm_hash(
        itype.cpu,
        itype.ram,
        itype.disk,
        image=image.meta.name,
        image_id=image.id,
        source=image.source.rbd or image.source.path or str(image.source.ssh or ""),
        extra=(
            *((("virtType", virt_type.value),) if virt_type != VirtType.QEMU else ()),
            *((("arch", image.arch),) if image.arch != "x86_64" else ()),
            *((("graphics", "vnc"),) if vnc else ()),
        ),
    )


@lru_cache(maxsize=4096)
def _vm_hash(
    cpu: int,
    ram: int,
    disk: int,
    *,
    image: str,
    image_id: int,
    source: str | None,
    extra: tuple[tuple[str, str], ...],
) -> str:
    return identity.spec_hash(
        {
            "cpu": cpu,
            "ram": ram,
            "disk": disk,
            "image": image,
            "imageId": image_id,
            "source": source,
            **dict(extra),
        }
    )


def virt_type(host: Host | None, observed: ObservedHost | None, arch: str) -> VirtType:
    """The Host's forced type, else kvm where libvirt offers it for `arch`, else TCG."""
    if host is not None and host.virt_type is not None:
        return VirtType(host.virt_type.value)
    if observed is not None and observed.offers(arch, VirtType.KVM.value):
        return VirtType.KVM
    return VirtType.QEMU


MAC_PREFIX = "52:54:00"  # qemu/KVM's locally administered OUI, as libvirt uses it
MAX_NICS = 8


def nic_mac(vmid: int, index: int) -> str:
    """A deterministic MAC from (vmid, NIC index): 21 bits of vmid, 3 of index.

    Unique for vmids below 2**21 with up to 8 NICs; stable across re-creates because the
    vmid is.  (A hash would collide by the birthday bound after a few thousand NICs.)
    """
    value = ((vmid << 3) | (index & (MAX_NICS - 1))) & 0xFFFFFF
    return f"{MAC_PREFIX}:{value >> 16:02x}:{(value >> 8) & 0xFF:02x}:{value & 0xFF:02x}"


def nic_networks(
    settings: PlanSettings, vm: VirtualMachine, host: Host | None
) -> tuple[Network, ...]:
    """The VM's networks: its own list, else the Host's default, the config's, one user NIC."""
    nets = vm.networks
    if nets is None and host is not None:
        nets = host.default_networks
    if nets is None:
        nets = settings.default_networks
    if nets is None:
        nets = DEFAULT_NETWORKS
    return nets


def volume_hash(volume: Volume) -> str:
    return _volume_hash(volume.size, volume.reclaim_policy.value)


@lru_cache(maxsize=4096)
def _volume_hash(size: int, policy: str) -> str:
    return identity.spec_hash({"size": size, "reclaimPolicy": policy})


@dataclass
class DomainSpecs:
    """The desired domain of each VM in one planning pass (`build`).

    Why a class: at 50k resources a handful of (host, image, instance type, networks)
    combinations recur thousands of times, and what depends only on them - the domain type
    (from the Host spec and the host's capabilities), the spec hash (sha256 of canonical
    JSON) and the NIC kinds - is computed once per combination and looked up after that.
    Only what is the VM's own (its name, vmid, MACs, root image, console log) is built per
    VM.  Built per pass: the hosts and their capabilities are those of this pass.
    """

    settings: PlanSettings
    hosts: Mapping[str, Host]
    observed: Mapping[str, ObservedHost]
    _types: dict[tuple[str, str], VirtType] = field(default_factory=dict)
    _hashes: dict[tuple[str, str, VirtType, bool], str] = field(default_factory=dict)
    _nics: dict[tuple[Network, ...], tuple[tuple[NicKind, str | None], ...]] = field(
        default_factory=dict
    )

    def build(
        self,
        vm: VirtualMachine,
        itype: InstanceType,
        image: Image,
        vmid: int,
        host: str,
        *,
        name: str | None = None,
    ) -> DomainSpec:
        """The domain `vm` should be on `host` (named `name`: an existing domain's name)."""
        spec_host = self.hosts.get(host)
        key = (host, image.arch)
        vtype = self._types.get(key)
        if vtype is None:
            vtype = self._types[key] = virt_type(spec_host, self.observed.get(host), image.arch)
        hkey = (itype.meta.name, image.meta.name, vtype, vm.vnc)
        spec_hash = self._hashes.get(hkey)
        if spec_hash is None:
            spec_hash = self._hashes[hkey] = vm_hash(itype, image, vtype, vnc=vm.vnc)
        nets = nic_networks(self.settings, vm, spec_host)
        kinds = self._nics.get(nets)
        if kinds is None:
            kinds = self._nics[nets] = tuple(
                (NicKind(n.kind.value), n.name) for n in nets[:MAX_NICS]
            )
        vm_name = vm.meta.name
        settings = self.settings
        return DomainSpec(
            name=identity.domain_name(vm_name) if name is None else name,
            vmid=vmid,
            spec_hash=spec_hash,
            vcpus=itype.cpu,
            memory_mib=itype.ram,
            root_image=settings.rbd(identity.root_disk_name(vm_name)),
            console_log=settings.console_log(vm_name),
            ceph=settings.ceph,
            running=vm.running,
            virt_type=vtype,
            arch=image.arch,
            nics=tuple(
                NicSpec(mac=nic_mac(vmid, i), kind=kind, source=source)
                for i, (kind, source) in enumerate(kinds)
            ),
            vnc=vm.vnc,
        )


def observed_domain(settings: PlanSettings, dom: ObservedDomain, mark: OwnerMark) -> DomainSpec:
    """A DomainSpec describing one of our domains as it is (for stop/destroy/detach)."""
    vm = mark.name
    return DomainSpec(
        name=dom.name,
        vmid=mark.vmid,
        spec_hash=mark.spec_hash,
        vcpus=dom.vcpus,
        memory_mib=dom.memory_mib,
        root_image=settings.rbd(identity.root_disk_name(vm)),
        console_log=settings.console_log(vm),
        ceph=settings.ceph,
        running=active(dom),
    )


def root_meta(vm: str, vmid: int, spec_hash: str) -> Meta:
    return (
        (identity.META_MANAGED_BY, identity.MANAGED_BY),
        (identity.META_KIND, "root"),
        (identity.META_NAME, vm),
        (identity.META_ID, str(vmid)),
        (identity.META_SPEC_HASH, spec_hash),
    )


def volume_meta(volume: Volume, volumeid: int) -> Meta:
    return (
        (identity.META_MANAGED_BY, identity.MANAGED_BY),
        (identity.META_KIND, "volume"),
        (identity.META_NAME, volume.meta.name),
        (identity.META_ID, str(volumeid)),
        (identity.META_SPEC_HASH, volume_hash(volume)),
        (identity.META_RECLAIM, volume.reclaim_policy.value),
    )


def gib(size_bytes: int) -> str:
    value = size_bytes / GIB
    return f"{value:g} GiB" if value != int(value) else f"{int(value)} GiB"


def domain_text(dom: ObservedDomain, root: ObservedImage | None) -> str:
    disk = f", {gib(root.size_bytes)}" if root is not None else ""
    return f"{dom.vcpus} CPU, {dom.memory_mib} MiB{disk}, {dom.state.value}"


def wanted_text(vm: VirtualMachine, itype: InstanceType, host: str | None = None) -> str:
    where = f"on {host}: " if host else ""
    state = "running" if vm.running else "stopped"
    return f"{where}{itype.cpu} CPU, {itype.ram} MiB, {itype.disk} GiB, image {vm.image}, {state}"
