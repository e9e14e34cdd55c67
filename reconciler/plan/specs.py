"""How desired resources turn into payloads: DomainSpecs, image-meta, spec hashes, labels.

Kept apart from the rules so that every rule module builds the same DomainSpec for the
same VM, and so that the meta written on images and the hash compared against the owner
mark are defined once.
"""

from __future__ import annotations

from functools import lru_cache

from reconciler import identity
from reconciler.model import DEFAULT_NETWORKS, Host, Image, InstanceType, VirtualMachine, Volume
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
        source=image.source.rbd or image.source.path,
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


def desired_nics(
    settings: PlanSettings, vm: VirtualMachine, host: Host | None, vmid: int
) -> tuple[NicSpec, ...]:
    """The VM's NICs: its own list, else the Host's default, the config's, one user-mode NIC."""
    nets = vm.networks
    if nets is None and host is not None:
        nets = host.default_networks
    if nets is None:
        nets = settings.default_networks
    if nets is None:
        nets = DEFAULT_NETWORKS
    return tuple(
        NicSpec(mac=nic_mac(vmid, i), kind=NicKind(net.kind.value), source=net.name)
        for i, net in enumerate(nets[:MAX_NICS])
    )


def volume_hash(volume: Volume) -> str:
    return _volume_hash(volume.size, volume.reclaim_policy.value)


@lru_cache(maxsize=4096)
def _volume_hash(size: int, policy: str) -> str:
    return identity.spec_hash({"size": size, "reclaimPolicy": policy})


def desired_domain(
    settings: PlanSettings,
    vm: VirtualMachine,
    itype: InstanceType,
    image: Image,
    vmid: int,
    *,
    host: Host | None = None,
    observed: ObservedHost | None = None,
) -> DomainSpec:
    """The domain `vm` should be, on `host` (its Host spec and observed capabilities decide
    the domain type and default NICs; without a host, TCG and the config's NICs)."""
    name = vm.meta.name
    vtype = virt_type(host, observed, image.arch)
    return DomainSpec(
        name=identity.domain_name(name),
        vmid=vmid,
        spec_hash=vm_hash(itype, image, vtype, vnc=vm.vnc),
        vcpus=itype.cpu,
        memory_mib=itype.ram,
        root_image=settings.rbd(identity.root_disk_name(name)),
        console_log=settings.console_log(name),
        ceph=settings.ceph,
        running=vm.running,
        virt_type=vtype,
        arch=image.arch,
        nics=desired_nics(settings, vm, host, vmid),
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
