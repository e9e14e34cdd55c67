"""Synthesized fleets for B3 and B5: desired states, observed worlds and test:/// hosts.

B3 must scale to 1000 hosts and 50k resources, which no lab on 2 cores can hold, so the
inputs are generated: a `DesiredState` of VMs with one attached volume each, the matching
"from empty" `ObservedWorld`, and the converged world obtained by applying the create
actions of a plan the way the real backends would (checked: the next plan is empty).  For
observe, libvirt `test:///` node files with volctl-marked domains, one file per host.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reconciler.backends.domxml import render_domain
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
    ObservedNic,
    ObservedStorage,
    ObservedWorld,
    OwnerMark,
)
from reconciler.payload import CephAccess, DomainSpec
from reconciler.plan.actions import (
    AttachVolume,
    CloneRoot,
    CreateVolume,
    DefineDomain,
    Plan,
    StartDomain,
)
from reconciler.plan.settings import PlanSettings

BASE = "rbd/bench-base@base"
CEPH = CephAccess(
    monitors=(("127.0.0.1", 6789),),
    auth_user="admin",
    secret_uuid="00000000-0000-4000-8000-000000000001",
    pool="rbd",
)
SETTINGS = PlanSettings(ceph=CEPH, console_dir="/var/log/volctl/consoles")
VMS_PER_HOST = 20


def desired_state(resources: int) -> DesiredState:
    """`resources` = VMs + volumes + attachments, one of each per VM."""
    n_vm = max(1, resources // 3)
    n_hosts = max(1, n_vm // VMS_PER_HOST)
    hosts = {
        f"h{i:04d}": Host(
            Meta(f"h{i:04d}"),
            uri=f"test:///h{i}",
            pmid=i + 1,
            cpu_capacity=4096,
            ram_capacity_mib=4 << 20,
        )
        for i in range(n_hosts)
    }
    vms, vols, atts = {}, {}, {}
    for i in range(n_vm):
        name = f"vm{i:05d}"
        vms[name] = VirtualMachine(Meta(name), instance_type="small", image="base")
        vols[f"{name}-data"] = Volume(
            Meta(f"{name}-data"), size=1, reclaim_policy=ReclaimPolicy.DELETE
        )
        atts[f"{name}-data"] = VolumeAttachment(
            Meta(f"{name}-data"), volume=f"{name}-data", vm=name
        )
    return DesiredState(
        hosts=hosts,
        images={"base": Image(Meta("base"), id=1, source=ImageSource(rbd=BASE))},
        instance_types={"small": InstanceType(Meta("small"), tid=1, cpu=1, ram=256, disk=1)},
        vms=vms,
        volumes=vols,
        attachments=atts,
        revision="synth",
    )


def empty_world(desired: DesiredState) -> ObservedWorld:
    hosts = {
        n: ObservedHost(n, reachable=True, cpus=4096, memory_mib=4 << 20, hostname=n)
        for n in desired.hosts
    }
    storage = ObservedStorage(
        reachable=True, pool="rbd", images={}, external_snapshots={BASE: True}
    )
    return ObservedWorld(hosts=hosts, storage=storage)


def converged_world(observed: ObservedWorld, plan: Plan) -> ObservedWorld:
    """Apply a create-only plan as the backends would (clone, create, define, start, attach)."""
    images = dict(observed.storage.images)
    domains: dict[tuple[str, str], ObservedDomain] = {}
    for a in plan.actions:
        if isinstance(a, CloneRoot | CreateVolume):
            parent = a.parent if isinstance(a, CloneRoot) else None
            images[a.image_name] = ObservedImage(
                a.image_name, a.size_bytes, meta=dict(a.meta), parent=parent
            )
        elif isinstance(a, DefineDomain):
            spec = a.domain
            domains[(a.host, spec.name)] = ObservedDomain(
                name=spec.name,
                uuid=f"u-{spec.vmid}",
                state=DomainState.SHUTOFF,
                vcpus=spec.vcpus,
                memory_mib=spec.memory_mib,
                mark=OwnerMark(spec.name, spec.vmid, spec.spec_hash),
                disks=(ObservedDisk("vda", spec.root_image),),
                nics=tuple(ObservedNic(n.mac, n.kind.value, n.source, "virtio") for n in spec.nics),
                virt_type=spec.virt_type.value,
            )
    for a in plan.actions:
        if isinstance(a, StartDomain):
            key = (a.host, a.domain.name)
            domains[key] = replace(domains[key], state=DomainState.RUNNING)
    for a in plan.actions:
        if isinstance(a, AttachVolume):
            key = (a.host, a.domain.name)
            d = domains[key]
            domains[key] = replace(
                d,
                disks=(
                    *d.disks,
                    ObservedDisk(a.disk.target, a.disk.rbd_image, serial=a.disk.serial),
                ),
            )
    hosts = {}
    for n, h in observed.hosts.items():
        mine = tuple(sorted((d for (hn, _), d in domains.items() if hn == n), key=lambda d: d.name))
        hosts[n] = replace(h, domains=mine)
    return ObservedWorld(hosts=hosts, storage=replace(observed.storage, images=images))


def write_test_hosts(
    directory: Path, n_hosts: int, per_host: int, *, pool: str = "rbd"
) -> dict[str, str]:
    """One libvirt test-driver node file per host with `per_host` volctl-marked domains, each
    with its root disk `POOL/vm-vmNNNNNN-root`."""
    directory.mkdir(parents=True, exist_ok=True)
    uris = {}
    for h in range(n_hosts):
        doms = []
        for d in range(per_host):
            vmid = h * per_host + d + 1
            spec = DomainSpec(
                name=f"vm{vmid:06d}",
                vmid=vmid,
                spec_hash=f"{vmid:016x}",
                vcpus=1,
                memory_mib=256,
                root_image=f"{pool}/vm-vm{vmid:06d}-root",
                console_log=f"/var/log/volctl/consoles/vm{vmid:06d}.log",
                ceph=CEPH,
            )
            doms.append(render_domain(spec, domain_type="test"))
        xml = (
            "<node><cpu><mhz>2000</mhz><model>bench</model><active>64</active><nodes>1</nodes>"
            "<sockets>1</sockets><cores>64</cores><threads>1</threads></cpu>"
            f"<memory>268435456</memory>{''.join(doms)}</node>"
        )
        path = directory / f"h{h:04d}.xml"
        path.write_text(xml)
        uris[f"h{h:04d}"] = f"test://{path}"
    return uris
