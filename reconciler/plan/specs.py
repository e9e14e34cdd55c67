"""How desired resources turn into payloads: DomainSpecs, image-meta, spec hashes, labels.

Kept apart from the rules so that every rule module builds the same DomainSpec for the
same VM, and so that the meta written on images and the hash compared against the owner
mark are defined once.
"""

from __future__ import annotations

from functools import lru_cache

from reconciler import identity
from reconciler.model import Image, InstanceType, VirtualMachine, Volume
from reconciler.observe.types import ObservedDomain, ObservedImage, OwnerMark
from reconciler.payload import DomainSpec
from reconciler.plan.actions import Meta
from reconciler.plan.settings import PlanSettings
from reconciler.plan.world import active

GIB = 1 << 30


def vm_hash(itype: InstanceType, image: Image) -> str:
    """The VM spec hash stored in the owner mark: what the domain and root disk are made of."""
    return _vm_hash(
        itype.cpu,
        itype.ram,
        itype.disk,
        image=image.meta.name,
        image_id=image.id,
        source=image.source.rbd or image.source.path,
    )


@lru_cache(maxsize=4096)
def _vm_hash(
    cpu: int, ram: int, disk: int, *, image: str, image_id: int, source: str | None
) -> str:
    return identity.spec_hash(
        {
            "cpu": cpu,
            "ram": ram,
            "disk": disk,
            "image": image,
            "imageId": image_id,
            "source": source,
        }
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
) -> DomainSpec:
    name = vm.meta.name
    return DomainSpec(
        name=identity.domain_name(name),
        vmid=vmid,
        spec_hash=vm_hash(itype, image),
        vcpus=itype.cpu,
        memory_mib=itype.ram,
        root_image=settings.rbd(identity.root_disk_name(name)),
        console_log=settings.console_log(name),
        ceph=settings.ceph,
        running=vm.running,
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
