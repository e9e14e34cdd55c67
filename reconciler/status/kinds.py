"""What the observed world says about each resource, kind by kind.

`compute.py` decides phases and conditions generically; this module supplies, per resource,
the facts that differ by kind: whether it exists, the phase it has once nothing is left to
do, its ids (vmid, volumeid, image id, tid, pmid), host, spec hashes and display details.
`Index` builds the lookups once per pass so status stays linear in the number of resources.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import assert_never
from urllib.parse import urlsplit

from reconciler import identity
from reconciler.model import DesiredState, Kind
from reconciler.observe.types import (
    DomainState,
    ObservedDisk,
    ObservedDomain,
    ObservedImage,
    ObservedWorld,
)
from reconciler.plan.actions import (
    Action,
    AttachNic,
    AttachVolume,
    Blocked,
    CloneRoot,
    CreateVolume,
    DefineDomain,
    DeleteRoot,
    DeleteVolume,
    DestroyDomain,
    DetachNic,
    DetachVolume,
    ImportImage,
    Plan,
    ResizeVolume,
    SetVolumeMeta,
    StartDomain,
    StopDomain,
)
from reconciler.plan.specs import virt_type
from reconciler.status.types import HostStatus, Phase


@dataclass(frozen=True)
class Facts:
    key: str  # "vm/NAME"
    kind: str  # model.Kind value
    name: str
    desired: bool  # in the spec
    exists: bool  # observed
    phase: Phase  # its phase when the plan has nothing left to do for it
    message: str = ""
    observed_hash: str | None = None
    desired_hash: str | None = None
    ids: Mapping[str, int] = field(default_factory=dict)
    host: str | None = None
    pmid: int | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    detaching: bool = False  # a disk of it is still in the live domain after a detach


@dataclass(frozen=True)
class DiskRef:
    host: str
    domain: ObservedDomain
    disk: ObservedDisk


@dataclass
class Index:
    desired: DesiredState
    observed: ObservedWorld
    plan: Plan
    pool: str = "rbd"
    blocked: dict[str, Blocked] = field(default_factory=dict)
    pending: dict[str, list[Action]] = field(default_factory=dict)
    doms: dict[str, tuple[str, ObservedDomain]] = field(default_factory=dict)  # ours, by VM
    disks: dict[str, list[DiskRef]] = field(default_factory=dict)  # "pool/image" -> refs

    @classmethod
    def build(cls, desired: DesiredState, observed: ObservedWorld, plan: Plan) -> Index:
        idx = cls(desired, observed, plan, pool=observed.storage.pool)
        idx.blocked = {b.resource: b for b in plan.blocked}
        for a in plan.actions:
            idx.pending.setdefault(a.resource, []).append(a)
        for hname in sorted(observed.hosts):
            host = observed.hosts[hname]
            for dom in host.domains if host.reachable else ():
                if dom.mark is not None:
                    idx.doms.setdefault(dom.mark.name, (hname, dom))
                for disk in dom.disks:
                    if disk.rbd_image:
                        idx.disks.setdefault(disk.rbd_image, []).append(DiskRef(hname, dom, disk))
        return idx

    def pmid(self, host: str | None) -> int | None:
        spec = self.desired.hosts.get(host) if host else None
        return spec.pmid if spec else None

    def image(self, name: str) -> ObservedImage | None:
        img = self.observed.storage.images.get(name)
        return img if img is not None and img.ours else None

    def rbd(self, image: str) -> str:
        return f"{self.pool}/{image}"

    def host_statuses(self) -> dict[str, HostStatus]:
        out: dict[str, HostStatus] = {}
        for name, spec in sorted(self.desired.hosts.items()):
            obs = self.observed.hosts.get(name)
            hs = HostStatus(name=name, uri=spec.uri, pmid=spec.pmid, reachable=False)
            if obs is None or not obs.reachable:
                out[name] = _replace_reason(hs, obs.reason if obs else "not observed")
                continue
            cpu_ours = cpu_foreign = ram_ours = ram_foreign = n_ours = n_foreign = 0
            for d in obs.domains:
                if d.mark is not None:  # ours reserve capacity even when stopped
                    n_ours += 1
                    cpu_ours += d.vcpus
                    ram_ours += d.memory_mib
                else:
                    n_foreign += 1
                    if d.state != DomainState.SHUTOFF:
                        cpu_foreign += d.vcpus
                        ram_foreign += d.memory_mib
            out[name] = HostStatus(
                name=name,
                uri=spec.uri,
                pmid=spec.pmid,
                reachable=True,
                cpus=spec.cpu_capacity if spec.cpu_capacity is not None else obs.cpus,
                memory_mib=(
                    spec.ram_capacity_mib if spec.ram_capacity_mib is not None else obs.memory_mib
                ),
                cpu_used_ours=cpu_ours,
                cpu_used_foreign=cpu_foreign,
                ram_used_ours_mib=ram_ours,
                ram_used_foreign_mib=ram_foreign,
                domains_ours=n_ours,
                domains_foreign=n_foreign,
                virt_type=virt_type(spec, obs, "x86_64").value,
                virt_type_forced=spec.virt_type is not None,
                arches=obs.arches,
            )
        return out

    def desired_hash(self, key: str, observed: str | None) -> str | None:
        """The spec hash the plan is driving towards, else (nothing to do) the observed one."""
        for a in self.pending.get(key, ()):
            driven = driven_hash(a)
            if driven is not None:
                return driven
        return observed


def driven_hash(a: Action) -> str | None:
    """The spec hash an action writes onto its own resource (domain mark or image-meta).

    A volume resized online or detached names its VM's domain, whose hash is the VM's, not
    the volume's: it writes no hash of the volume."""
    match a:
        case DefineDomain() | StartDomain() | StopDomain() | DestroyDomain():
            return a.domain.spec_hash
        case ImportImage() | CloneRoot() | CreateVolume() | SetVolumeMeta():
            return dict(a.meta).get(identity.META_SPEC_HASH)
        case ResizeVolume() | DeleteRoot() | DeleteVolume() | AttachVolume() | DetachVolume():
            return None
        case AttachNic() | DetachNic():  # NICs are not part of the VM's spec hash
            return None
        case _:
            assert_never(a)


def _replace_reason(hs: HostStatus, reason: str | None) -> HostStatus:
    return HostStatus(hs.name, hs.uri, hs.pmid, False, reason or "unreachable")


def resource_facts(idx: Index) -> Iterator[Facts]:
    d = idx.desired
    for name in sorted(d.hosts):
        yield _host(idx, name)
    for name in sorted(d.images):
        yield _image(idx, name)
    for name in sorted(d.instance_types):
        it = d.instance_types[name]
        used = sum(1 for vm in d.vms.values() if vm.instance_type == name)
        yield Facts(
            f"instancetype/{name}",
            Kind.INSTANCE_TYPE,
            name,
            desired=True,
            exists=True,
            phase=Phase.READY,
            ids={"tid": it.tid},
            details={
                "cpu": str(it.cpu),
                "ram": str(it.ram),
                "disk": str(it.disk),
                "vms": str(used),
            },
        )
    vms = set(d.vms) | {n for n in idx.doms if n not in d.vms}
    for name in sorted(vms):
        yield _vm(idx, name)
    vols = set(d.volumes) | _released(idx)
    for name in sorted(vols):
        yield _volume(idx, name)
    for name in sorted(d.attachments):
        yield _attachment(idx, name)


def _host(idx: Index, name: str) -> Facts:
    spec = idx.desired.hosts[name]
    obs = idx.observed.hosts.get(name)
    up = obs is not None and obs.reachable
    reason = (obs.reason if obs else None) or "not observed"
    return Facts(
        f"host/{name}",
        Kind.HOST,
        name,
        desired=True,
        exists=up,
        phase=Phase.READY if up else Phase.UNKNOWN,
        message="" if up else f"host unreachable: {reason}",
        ids={"pmid": spec.pmid},
        host=name,
        pmid=spec.pmid,
        details={"uri": spec.uri, "hostname": (obs.hostname or "") if obs else ""},
    )


def _image(idx: Index, name: str) -> Facts:
    img = idx.desired.images[name]
    key = f"image/{name}"
    details = {"source": img.source.path or img.source.rbd or str(img.source.ssh or "")}
    if img.source.rbd is not None:
        found = idx.observed.storage.external_snapshots.get(img.source.rbd)
        phase, msg = Phase.READY, ""
        if found is False:
            phase, msg = Phase.BLOCKED, f"snapshot {img.source.rbd} not found"
        return Facts(
            key, Kind.IMAGE, name, True, bool(found), phase, msg, ids={"id": img.id},
            details={**details, "parent": img.source.rbd},
        )  # fmt: skip
    base = idx.image(identity.base_image_name(name))
    ready = base is not None and identity.BASE_SNAPSHOT in base.snapshots
    observed = base.meta.get(identity.META_SPEC_HASH) if base else None
    return Facts(
        key,
        Kind.IMAGE,
        name,
        desired=True,
        exists=ready,
        phase=Phase.READY if ready else Phase.PENDING,
        message="" if ready else "imported into RBD on first use",
        observed_hash=observed,
        desired_hash=idx.desired_hash(key, observed),
        ids={"id": img.id},
        details={**details, "rbdImage": idx.rbd(identity.base_image_name(name))},
    )


def _vm(idx: Index, name: str) -> Facts:
    key = f"vm/{name}"
    vm = idx.desired.vms.get(name)
    ref = idx.doms.get(name)
    dom = ref[1] if ref else None
    host = ref[0] if ref else idx.plan.placements.get(key) or (vm.host if vm else None)
    ids: dict[str, int] = {}
    vmid = dom.mark.vmid if dom and dom.mark else idx.plan.ids.get(key)
    if vmid is not None:
        ids["vmid"] = vmid
    details: dict[str, str] = {"domain": identity.domain_name(name)}
    if vm is not None:
        it = idx.desired.instance_types.get(vm.instance_type)
        image = idx.desired.images.get(vm.image)
        if it is not None:
            ids["tid"] = it.tid
        if image is not None:
            ids["imageId"] = image.id
        details.update(instanceType=vm.instance_type, image=vm.image, running=str(vm.running))
    pmid = idx.pmid(host)
    if pmid is not None:
        ids["pmid"] = pmid
    if dom is not None:
        details.update(state=str(dom.state), cpu=str(dom.vcpus), ram=str(dom.memory_mib))
        details.update(virtType=dom.virt_type or "", macs=" ".join(n.mac for n in dom.nics))
        if dom.vnc:
            details["vnc"] = _vnc_address(idx, host, dom.vnc)
        if dom.console_log:
            details["consoleLog"] = dom.console_log
    observed = dom.mark.spec_hash if dom and dom.mark else None
    if vm is None:
        phase, msg = Phase.DELETING, "no longer in the spec"
    elif dom is None:
        unknown = host is not None and not _reachable(idx, host)
        phase = Phase.UNKNOWN if unknown else Phase.PENDING
        msg = f"host {host} is unknown" if unknown else "not created yet"
    elif vm.running:
        ok = dom.state == DomainState.RUNNING
        phase, msg = (Phase.READY, "") if ok else (Phase.PROGRESSING, f"domain is {dom.state}")
    else:
        ok = dom.state == DomainState.SHUTOFF
        phase, msg = (Phase.STOPPED, "") if ok else (Phase.PROGRESSING, f"domain is {dom.state}")
    return Facts(
        key,
        Kind.VIRTUAL_MACHINE,
        name,
        desired=vm is not None,
        exists=dom is not None,
        phase=phase,
        message=msg,
        observed_hash=observed,
        desired_hash=idx.desired_hash(key, observed) if vm is not None else None,
        ids=ids,
        host=host,
        pmid=pmid,
        details=details,
    )


def _vnc_address(idx: Index, host: str | None, listen: str) -> str:
    """`vnc://ADDR:PORT`; a display listening on all addresses is shown at its host."""
    addr, _, port = listen.rpartition(":")
    if addr in ("0.0.0.0", "::", "") and host is not None:  # noqa: S104 - parsing, not binding
        spec = idx.desired.hosts.get(host)
        obs = idx.observed.hosts.get(host)
        addr = (urlsplit(spec.uri).hostname if spec else None) or (obs and obs.hostname) or ""
    return f"vnc://{addr}:{port}"


def _released(idx: Index) -> set[str]:
    out = set()
    for name, img in idx.observed.storage.images.items():
        if not img.ours or img.meta.get(identity.META_KIND) != "volume":
            continue
        owner = img.meta.get(identity.META_NAME, "")
        if owner and name == identity.volume_image_name(owner) and owner not in idx.desired.volumes:
            out.add(owner)
    return out


def _volume(idx: Index, name: str) -> Facts:
    key = f"volume/{name}"
    spec = idx.desired.volumes.get(name)
    img = idx.image(identity.volume_image_name(name))
    rbd = idx.rbd(identity.volume_image_name(name))
    refs = idx.disks.get(rbd, [])
    ids: dict[str, int] = {}
    volid = _meta_int(img) if img else None
    volid = volid if volid is not None else idx.plan.ids.get(key)
    if volid is not None:
        ids["volumeid"] = volid
    host = refs[0].host if refs else None
    pmid = idx.pmid(host)
    if pmid is not None:
        ids["pmid"] = pmid
    details: dict[str, str] = {"rbdImage": rbd}
    if spec is not None:
        details.update(size=f"{spec.size}Gi", reclaimPolicy=str(spec.reclaim_policy))
    if img is not None:
        details["sizeBytes"] = str(img.size_bytes)
        details["watchers"] = str(len(img.watchers))
        if spec is None:
            details["reclaimPolicy"] = img.meta.get(identity.META_RECLAIM, "Retain")
    if refs:
        details["attachedTo"] = ",".join(sorted({r.domain.name for r in refs}))
    observed = img.meta.get(identity.META_SPEC_HASH) if img else None
    if spec is None:
        phase, msg = Phase.RELEASED, "no longer in the spec; kept (reclaimPolicy Retain)"
    elif img is None:
        phase, msg = Phase.PENDING, "not created yet"
    else:
        phase, msg = Phase.READY, ""
    return Facts(
        key,
        Kind.VOLUME,
        name,
        desired=spec is not None,
        exists=img is not None,
        phase=phase,
        message=msg,
        observed_hash=observed,
        desired_hash=idx.desired_hash(key, observed) if spec is not None else None,
        ids=ids,
        host=host,
        pmid=pmid,
        details=details,
        detaching=any(not r.disk.persistent for r in refs),
    )


def _attachment(idx: Index, name: str) -> Facts:
    att = idx.desired.attachments[name]
    key = f"attachment/{name}"
    rbd = idx.rbd(identity.volume_image_name(att.volume))
    refs = idx.disks.get(rbd, [])
    want = identity.domain_name(att.vm)
    here = [r for r in refs if r.domain.mark is not None and r.domain.name == want]
    vm_ref = idx.doms.get(att.vm)
    host = vm_ref[0] if vm_ref else idx.plan.placements.get(f"vm/{att.vm}")
    ids: dict[str, int] = {}
    img = idx.image(identity.volume_image_name(att.volume))
    volid = _meta_int(img) if img else idx.plan.ids.get(f"volume/{att.volume}")
    if volid is not None:
        ids["volumeid"] = volid
    if vm_ref is not None and vm_ref[1].mark is not None:
        ids["vmid"] = vm_ref[1].mark.vmid
    pmid = idx.pmid(host)
    if pmid is not None:
        ids["pmid"] = pmid
    details = {"volume": att.volume, "vm": att.vm}
    if here:
        details["target"] = here[0].disk.target
        if here[0].disk.serial:
            details["serial"] = here[0].disk.serial
    elsewhere = sorted({r.domain.name for r in refs if r not in here})
    if elsewhere:
        details["attachedTo"] = ",".join(elsewhere)
    return Facts(
        key,
        Kind.VOLUME_ATTACHMENT,
        name,
        desired=True,
        exists=bool(here),
        phase=Phase.READY if here else Phase.PENDING,
        message="" if here else "not attached yet",
        ids=ids,
        host=host,
        pmid=pmid,
        details=details,
        detaching=any(not r.disk.persistent for r in refs),
    )


def _reachable(idx: Index, host: str) -> bool:
    obs = idx.observed.hosts.get(host)
    return obs is not None and obs.reachable


def _meta_int(img: ObservedImage) -> int | None:
    try:
        return int(img.meta.get(identity.META_ID, ""))
    except ValueError:
        return None
