"""Small constructors for desired and observed worlds, so planner tests read like tables."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler import identity
from reconciler.model import (
    DesiredState,
    Host,
    Image,
    ImageSource,
    InstanceType,
    Meta,
    ReclaimPolicy,
    VirtualMachine,
    Volume,
    VolumeAttachment,
)
from reconciler.observe.types import (
    DomainState,
    ObservedDisk,
    ObservedDomain,
    ObservedHost,
    ObservedImage,
    ObservedStorage,
    ObservedWorld,
)
from reconciler.payload import CephAccess
from reconciler.plan.actions import ActionKind, Plan
from reconciler.plan.planner import plan
from reconciler.plan.settings import PlanSettings

from .sim import apply

GIB = 1 << 30
CEPH = CephAccess(monitors=(("127.0.0.1", 6789),), auth_user="admin", secret_uuid="sec-1")
SETTINGS = PlanSettings(ceph=CEPH, console_dir="/var/log/volctl")


def host(name: str, pmid: int, cpu: int | None = None, ram: int | None = None) -> Host:
    return Host(
        Meta(name), uri=f"test:///{name}", pmid=pmid, cpu_capacity=cpu, ram_capacity_mib=ram
    )


def image(name: str, id_: int = 1, path: str | None = None, rbd: str | None = None) -> Image:
    if path is None and rbd is None:
        path = f"/images/{name}.raw"
    return Image(Meta(name), id_, ImageSource(path=path, rbd=rbd))


def itype(name: str, cpu: int = 1, ram: int = 1024, disk: int = 10, tid: int = 1) -> InstanceType:
    return InstanceType(Meta(name), tid, cpu, ram, disk)


def vm(
    name: str,
    type_: str = "small",
    image_: str = "deb",
    host_: str | None = None,
    group: str | None = None,
    running: bool = True,
) -> VirtualMachine:
    return VirtualMachine(Meta(name), type_, image_, host_, group, running)


def volume(name: str, size: int = 5, policy: ReclaimPolicy = ReclaimPolicy.RETAIN) -> Volume:
    return Volume(Meta(name), size, policy)


def attach(name: str, volume_: str, vm_: str) -> VolumeAttachment:
    return VolumeAttachment(Meta(name), volume_, vm_)


def desired(
    hosts: Iterable[Host] = (),
    vms: Iterable[VirtualMachine] = (),
    volumes: Iterable[Volume] = (),
    attachments: Iterable[VolumeAttachment] = (),
    images: Iterable[Image] = (),
    types: Iterable[InstanceType] = (),
) -> DesiredState:
    images = list(images) or [image("deb")]
    types = list(types) or [itype("small"), itype("big", cpu=4, ram=4096, disk=20, tid=2)]
    return DesiredState(
        hosts={h.meta.name: h for h in hosts},
        images={i.meta.name: i for i in images},
        instance_types={t.meta.name: t for t in types},
        vms={v.meta.name: v for v in vms},
        volumes={v.meta.name: v for v in volumes},
        attachments={a.meta.name: a for a in attachments},
    )


def ohost(
    name: str,
    cpus: int = 8,
    mem: int = 16384,
    domains: Iterable[ObservedDomain] = (),
    reachable: bool = True,
) -> ObservedHost:
    if not reachable:
        return ObservedHost(name, reachable=False, reason="connection refused")
    return ObservedHost(name, True, None, cpus, mem, tuple(domains))


def foreign(
    name: str,
    vcpus: int = 1,
    mem: int = 1024,
    state: DomainState = DomainState.RUNNING,
    disks: Iterable[ObservedDisk] = (),
) -> ObservedDomain:
    return ObservedDomain(name, f"uuid-{name}", state, vcpus, mem, None, tuple(disks))


def foreign_image(name: str, size: int = GIB) -> ObservedImage:
    return ObservedImage(name, size, {})


def world(
    *hosts: ObservedHost,
    images: Iterable[ObservedImage] = (),
    external: dict[str, bool] | None = None,
    storage_ok: bool = True,
) -> ObservedWorld:
    if not storage_ok:
        storage = ObservedStorage(False, "timed out")
    else:
        storage = ObservedStorage(
            True, None, "rbd", {i.name: i for i in images}, dict(external or {})
        )
    return ObservedWorld({h.name: h for h in hosts}, storage)


def run(d: DesiredState, w: ObservedWorld, settings: PlanSettings = SETTINGS) -> Plan:
    return plan(d, w, settings)


def converge(
    d: DesiredState, w: ObservedWorld, settings: PlanSettings = SETTINGS, passes: int = 3
) -> ObservedWorld:
    """Plan and apply until the plan is empty (at most `passes` times)."""
    for _ in range(passes):
        p = plan(d, w, settings)
        if p.empty:
            return w
        w = apply(w, p)
    return w


def kinds(p: Plan) -> list[tuple[str, str]]:
    return [(a.kind.value, a.resource) for a in p.actions]


def ids_of(p: Plan, kind: ActionKind) -> list[str]:
    return [a.id for a in p.actions if a.kind == kind]


def reasons(p: Plan) -> dict[str, str]:
    return {b.resource: b.reason for b in p.blocked}


def domain_of(w: ObservedWorld, name: str) -> tuple[str, ObservedDomain] | None:
    for h in w.hosts.values():
        for d in h.domains:
            if d.name == name:
                return h.name, d
    return None


def root_of(w: ObservedWorld, vm_: str) -> ObservedImage | None:
    return w.storage.images.get(identity.root_disk_name(vm_))
