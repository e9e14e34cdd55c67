"""Indexes over the observed world, built once per pass so that planning stays linear.

The observed types are plain tuples and mappings; asking "which domains of VM x exist",
"where is image y attached" or "is host h reachable" by scanning them would make the
planner quadratic at 50k resources.  `World` answers each of those questions from a dict.
It also fixes the two orders everything else relies on: hosts by (pmid, name) and
resources by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler import identity
from reconciler.model import DesiredState, VolumeAttachment
from reconciler.observe.types import (
    DomainState,
    ObservedDisk,
    ObservedDomain,
    ObservedImage,
    ObservedWorld,
    OwnerMark,
)
from reconciler.payload import DiskBus
from reconciler.plan.settings import PlanSettings

NO_PMID = 1 << 62  # hosts that are observed but not in the spec sort last


@dataclass(frozen=True)
class DomainRef:
    """One of our domains: where it is, and its owner mark (so nobody has to re-check it)."""

    host: str
    domain: ObservedDomain
    mark: OwnerMark


@dataclass(frozen=True)
class DiskRef:
    host: str
    domain: ObservedDomain
    disk: ObservedDisk


@dataclass
class World:
    """Read-only lookups over (desired hosts, observed world) for one planning pass."""

    desired: DesiredState
    observed: ObservedWorld
    settings: PlanSettings
    host_order: dict[str, tuple[int, str]] = field(default_factory=dict)
    reachable: list[str] = field(default_factory=list)  # in host order
    unknown: list[str] = field(default_factory=list)  # unreachable or never observed
    unknown_reasons: dict[str, str] = field(default_factory=dict)
    ours_by_vm: dict[str, list[DomainRef]] = field(default_factory=dict)
    domain_names: dict[str, set[str]] = field(default_factory=dict)  # host -> all domain names
    disks_by_image: dict[str, list[DiskRef]] = field(default_factory=dict)  # "pool/img" -> refs
    roots: dict[str, ObservedImage] = field(default_factory=dict)  # vm name -> our root disk
    volumes: dict[str, ObservedImage] = field(default_factory=dict)  # volume name -> our image
    # desired attachment of each volume (the first by attachment name if several)
    attachment_of: dict[str, VolumeAttachment] = field(default_factory=dict)
    # the disk targets volumes may use on each bus, in order (computed once per pass)
    targets: dict[DiskBus, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, desired: DesiredState, observed: ObservedWorld, settings: PlanSettings) -> World:
        w = cls(desired, observed, settings, targets={b: settings.targets(b) for b in DiskBus})
        names = set(desired.hosts) | set(observed.hosts)
        for name in names:
            spec = desired.hosts.get(name)
            w.host_order[name] = (spec.pmid if spec is not None else NO_PMID, name)
        for name in sorted(names, key=w.host_order.__getitem__):
            obs = observed.hosts.get(name)
            if obs is None:
                w.unknown.append(name)
                w.unknown_reasons[name] = "not observed"
            elif not obs.reachable:
                w.unknown.append(name)
                w.unknown_reasons[name] = obs.reason or "unreachable"
            else:
                w.reachable.append(name)
                w._index_host(name)
        for refs in w.ours_by_vm.values():
            refs.sort(key=lambda r: w.host_order[r.host])
        if observed.storage.reachable:
            w._index_storage()
        for key in sorted(desired.attachments):
            att = desired.attachments[key]
            w.attachment_of.setdefault(att.volume, att)
        return w

    def _index_host(self, host: str) -> None:
        obs = self.observed.hosts[host]
        names = self.domain_names.setdefault(host, set())
        for dom in obs.domains:
            names.add(dom.name)
            if dom.mark is not None:
                ours = DomainRef(host, dom, dom.mark)
                self.ours_by_vm.setdefault(dom.mark.name, []).append(ours)
            for disk in dom.disks:
                if disk.rbd_image is not None:
                    ref = DiskRef(host, dom, disk)
                    self.disks_by_image.setdefault(disk.rbd_image, []).append(ref)

    def _index_storage(self) -> None:
        for name, img in self.observed.storage.images.items():
            if not img.ours:
                continue
            kind = img.meta.get(identity.META_KIND)
            owner = img.meta.get(identity.META_NAME, "")
            if kind == "root" and name == identity.root_disk_name(owner):
                self.roots[owner] = img
            elif kind == "volume" and name == identity.volume_image_name(owner):
                self.volumes[owner] = img

    # --- questions the planner asks -------------------------------------------------------

    @property
    def all_known(self) -> bool:
        return not self.unknown

    @property
    def storage_ok(self) -> bool:
        return self.observed.storage.reachable

    def image(self, name: str) -> ObservedImage | None:
        return self.observed.storage.images.get(name)

    def unknown_text(self) -> str:
        parts = [f"{h} ({self.unknown_reasons[h]})" for h in self.unknown[:5]]
        more = len(self.unknown) - 5
        return ", ".join(parts) + (f" and {more} more" if more > 0 else "")

    def domains_of(self, vm: str) -> list[DomainRef]:
        return self.ours_by_vm.get(vm, [])

    def disks_of(self, image: str) -> list[DiskRef]:
        """Where "image" (a name in the managed pool) is attached, on reachable hosts."""
        return self.disks_by_image.get(self.settings.rbd(image), [])

    def name_taken(self, host: str, domain: str) -> bool:
        names = self.domain_names.get(host)
        return names is not None and domain in names


def active(dom: ObservedDomain) -> bool:
    return dom.state != DomainState.SHUTOFF


def meta_int(img: ObservedImage | None, key: str = identity.META_ID) -> int | None:
    if img is None:
        return None
    try:
        return int(img.meta.get(key, ""))
    except ValueError:
        return None
