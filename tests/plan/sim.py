"""A pure simulated datacenter: `apply(observed, plan) -> ObservedWorld`.

Each action's effect is applied to a copy of the frozen world types, the way the real
backends would change libvirt and RBD (detach completes instantly).  The simulator is also
a referee: it raises `SimError` for anything the real world would refuse or that volctl
must never do - touching a foreign domain or image, acting on an unreachable host or on
unreachable Ceph, running an action before one it depends on, attaching a volume that is
attached elsewhere, removing an image still in use, cloning from a missing snapshot, or
redefining a running domain's CPU or RAM without a restart.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler import identity
from reconciler.observe.types import (
    DomainState,
    ObservedDisk,
    ObservedDomain,
    ObservedHost,
    ObservedImage,
    ObservedNic,
    ObservedWorld,
    OwnerMark,
)
from reconciler.payload import DomainSpec, NicSpec
from reconciler.plan.actions import Action, ActionKind, Plan

IMPORTED_SIZE = 2 << 30  # what an imported image file "is" in the simulation

K = ActionKind
STORAGE_KINDS = {
    K.IMPORT_IMAGE,
    K.CLONE_ROOT,
    K.DELETE_ROOT,
    K.CREATE_VOLUME,
    K.RESIZE_VOLUME,
    K.SET_VOLUME_META,
    K.DELETE_VOLUME,
}


def domain_of(action: Action) -> DomainSpec | None:
    """The domain an action acts on, None for a storage action (for cross-kind checks)."""
    domain: DomainSpec | None = getattr(action, "domain", None)
    return domain


class SimError(AssertionError):
    """The plan asked for something the world refuses or volctl must never do."""


class _World:
    def __init__(self, world: ObservedWorld) -> None:
        self.orig = world
        self.domains: dict[str, dict[str, ObservedDomain]] = {
            name: {d.name: d for d in h.domains} for name, h in world.hosts.items()
        }
        self.images: dict[str, ObservedImage] = dict(world.storage.images)
        self.pool = world.storage.pool
        self.ids = world.storage.ids  # the id ledger, advanced as the RBD backend does

    def freeze(self) -> ObservedWorld:
        hosts = {
            name: replace(
                h, domains=tuple(self.domains[name][d] for d in sorted(self.domains[name]))
            )
            if h.reachable
            else h
            for name, h in self.orig.hosts.items()
        }
        storage = replace(self.orig.storage, images=dict(sorted(self.images.items())), ids=self.ids)
        return ObservedWorld(hosts=hosts, storage=storage)

    def advance_ids(self, meta: dict[str, str]) -> None:
        """The high-water mark follows every root disk and volume created with its id."""
        value = meta.get(identity.META_ID, "")
        kind = meta.get(identity.META_KIND)
        if not value.isdigit():
            return
        if kind == "root":
            self.ids = replace(self.ids, vm=max(self.ids.vm, int(value)))
        elif kind == "volume":
            self.ids = replace(self.ids, volume=max(self.ids.volume, int(value)))

    # --- lookups that enforce the rules -------------------------------------------------

    def host(self, action: Action) -> dict[str, ObservedDomain]:
        if action.host is None:
            raise SimError(f"{action.id}: libvirt action without a host")
        h = self.orig.hosts.get(action.host)
        if h is None or not h.reachable:
            raise SimError(f"{action.id}: host {action.host} is not reachable")
        return self.domains[action.host]

    def our_domain(self, action: Action) -> ObservedDomain:
        assert action.domain is not None, action.id
        dom = self.host(action).get(action.domain.name)
        if dom is None:
            raise SimError(f"{action.id}: no domain {action.domain.name} on {action.host}")
        if dom.mark is None:
            raise SimError(f"{action.id}: touches foreign domain {dom.name}")
        return dom

    def our_image(self, action: Action) -> ObservedImage:
        assert action.image_name is not None, action.id
        img = self.images.get(action.image_name)
        if img is None:
            raise SimError(f"{action.id}: no image {action.image_name}")
        if not img.ours:
            raise SimError(f"{action.id}: touches foreign image {img.name}")
        return img

    def new_image(self, action: Action) -> bool:
        """True if the image must be created (an existing one must be ours: idempotent)."""
        assert action.image_name is not None, action.id
        img = self.images.get(action.image_name)
        if img is None:
            return True
        if not img.ours:
            raise SimError(f"{action.id}: would overwrite foreign image {img.name}")
        return False

    def users(self, rbd: str) -> list[str]:
        """Domains (on every reachable host) that have `rbd` as a disk."""
        return [
            f"{host}/{d.name}"
            for host, doms in self.domains.items()
            for d in doms.values()
            if any(k.rbd_image == rbd for k in d.disks)
        ]


def apply(observed: ObservedWorld, plan: Plan) -> ObservedWorld:
    w = _World(observed)
    done: set[str] = set()
    for action in plan.actions:
        for dep in action.depends_on:
            if dep not in done:
                raise SimError(f"{action.id} runs before its dependency {dep}")
        if action.kind in STORAGE_KINDS and not observed.storage.reachable:
            raise SimError(f"{action.id}: touches unreachable Ceph")
        _effect(w, action)
        done.add(action.id)
    return w.freeze()


def _effect(w: _World, a: Action) -> None:
    match a.kind:
        case K.IMPORT_IMAGE:
            if (
                w.new_image(a)
                or identity.BASE_SNAPSHOT not in w.images[a.image_name or ""].snapshots
            ):
                assert a.image_name is not None
                w.images[a.image_name] = ObservedImage(
                    a.image_name,
                    IMPORTED_SIZE,
                    dict(a.meta),
                    snapshots=(identity.BASE_SNAPSHOT,),
                    protected_snapshots=(identity.BASE_SNAPSHOT,),
                )
        case K.CLONE_ROOT | K.CREATE_VOLUME:
            if w.new_image(a):
                assert a.image_name is not None
                assert a.size_bytes is not None
                size, parent = a.size_bytes, None
                if a.kind == K.CLONE_ROOT:
                    parent = a.parent
                    size = max(size, _parent_size(w, a))
                w.images[a.image_name] = ObservedImage(a.image_name, size, dict(a.meta), parent)
                w.advance_ids(dict(a.meta))
        case K.RESIZE_VOLUME:
            img = w.our_image(a)
            assert a.size_bytes is not None
            if a.size_bytes < img.size_bytes:
                raise SimError(f"{a.id}: shrinks {img.name}")
            w.images[img.name] = replace(img, size_bytes=a.size_bytes)
            if a.domain is not None:
                dom = w.our_domain(a)
                if dom.state != DomainState.RUNNING:
                    raise SimError(f"{a.id}: guest resize on a domain that is not running")
        case K.SET_VOLUME_META:
            img = w.our_image(a)
            w.images[img.name] = replace(img, meta={**img.meta, **dict(a.meta)})
        case K.DELETE_ROOT | K.DELETE_VOLUME:
            img = w.our_image(a)
            users = w.users(f"{w.pool}/{img.name}")
            if users:
                raise SimError(f"{a.id}: {img.name} is still attached to {users}")
            if any(
                i.parent and i.parent.startswith(f"{w.pool}/{img.name}@") for i in w.images.values()
            ):
                raise SimError(f"{a.id}: {img.name} has clones")
            del w.images[img.name]
        case K.DEFINE_DOMAIN:
            _define(w, a)
        case K.START_DOMAIN:
            dom = w.our_domain(a)
            for disk in dom.disks if w.orig.storage.reachable else ():
                if disk.rbd_image and disk.rbd_image.split("/", 1)[1] not in w.images:
                    raise SimError(f"{a.id}: disk {disk.rbd_image} does not exist")
            w.host(a)[dom.name] = replace(dom, state=DomainState.RUNNING)
        case K.STOP_DOMAIN:
            dom = w.our_domain(a)
            w.host(a)[dom.name] = replace(dom, state=DomainState.SHUTOFF)
        case K.DESTROY_DOMAIN:
            dom = w.our_domain(a)
            del w.host(a)[dom.name]
        case K.ATTACH_VOLUME:
            _attach(w, a)
        case K.DETACH_VOLUME:
            dom = w.our_domain(a)
            assert a.disk is not None
            rest = tuple(d for d in dom.disks if d.rbd_image != a.disk.rbd_image)
            if len(rest) == len(dom.disks):
                raise SimError(f"{a.id}: {a.disk.rbd_image} is not attached to {dom.name}")
            w.host(a)[dom.name] = replace(dom, disks=rest)
        case K.ATTACH_NIC:
            dom = w.our_domain(a)
            if any(n.mac == a.nic.mac for n in dom.nics):
                raise SimError(f"{a.id}: {dom.name} already has a NIC {a.nic.mac}")
            w.host(a)[dom.name] = replace(dom, nics=(*dom.nics, _nic(a.nic)))
        case K.DETACH_NIC:
            dom = w.our_domain(a)
            rest_nics = tuple(n for n in dom.nics if n.mac != a.mac)
            if len(rest_nics) == len(dom.nics):
                raise SimError(f"{a.id}: {dom.name} has no NIC {a.mac}")
            w.host(a)[dom.name] = replace(dom, nics=rest_nics)


def _nic(nic: NicSpec) -> ObservedNic:
    return ObservedNic(nic.mac, nic.kind.value, nic.source, "virtio")


def _parent_size(w: _World, a: Action) -> int:
    assert a.parent is not None
    pool, _, rest = a.parent.partition("/")
    name, _, snap = rest.partition("@")
    if a.parent in w.orig.storage.external_snapshots:
        if not w.orig.storage.external_snapshots[a.parent]:
            raise SimError(f"{a.id}: clone of missing snapshot {a.parent}")
        img = w.images.get(name) if pool == w.pool else None
        return img.size_bytes if img else 0
    img = w.images.get(name) if pool == w.pool else None
    if img is None or snap not in img.snapshots:
        raise SimError(f"{a.id}: clone of missing snapshot {a.parent}")
    return img.size_bytes


def _define(w: _World, a: Action) -> None:
    spec = a.domain
    assert spec is not None
    doms = w.host(a)
    root = spec.root_image.split("/", 1)[1]
    if root not in w.images:
        raise SimError(f"{a.id}: root disk {spec.root_image} does not exist")
    mark = OwnerMark(spec.name, spec.vmid, spec.spec_hash)
    old = doms.get(spec.name)
    if old is None:
        doms[spec.name] = ObservedDomain(
            name=spec.name,
            uuid=f"uuid-{a.host}-{spec.name}",
            state=DomainState.SHUTOFF,
            vcpus=spec.vcpus,
            memory_mib=spec.memory_mib,
            mark=mark,
            disks=(ObservedDisk("vda", spec.root_image),),
            nics=tuple(_nic(n) for n in spec.nics),
            virt_type=spec.virt_type.value,
        )
        return
    if old.mark is None:
        raise SimError(f"{a.id}: redefines foreign domain {old.name}")
    if old.state != DomainState.SHUTOFF and (
        old.vcpus != spec.vcpus or old.memory_mib != spec.memory_mib
    ):
        raise SimError(f"{a.id}: changes CPU/RAM of a running domain without a restart")
    disks = (
        old.disks
        if any(d.target == "vda" for d in old.disks)
        else ((ObservedDisk("vda", spec.root_image), *old.disks))
    )
    # the persistent config gets the spec's NICs; a running domain keeps its live ones
    nics = tuple(_nic(n) for n in spec.nics) if old.state == DomainState.SHUTOFF else old.nics
    doms[spec.name] = replace(
        old,
        vcpus=spec.vcpus,
        memory_mib=spec.memory_mib,
        mark=mark,
        disks=disks,
        nics=nics,
        virt_type=spec.virt_type.value,
    )


def _attach(w: _World, a: Action) -> None:
    dom = w.our_domain(a)
    disk = a.disk
    assert disk is not None
    name = disk.rbd_image.split("/", 1)[1]
    img = w.images.get(name)
    if img is None or not img.ours:
        raise SimError(f"{a.id}: volume {disk.rbd_image} does not exist or is not ours")
    users = w.users(disk.rbd_image)
    if users:
        raise SimError(f"{a.id}: {disk.rbd_image} is already attached to {users}")
    if any(d.target == disk.target for d in dom.disks):
        raise SimError(f"{a.id}: target {disk.target} is taken on {dom.name}")
    w.host(a)[dom.name] = replace(
        dom, disks=(*dom.disks, ObservedDisk(disk.target, disk.rbd_image, disk.serial))
    )


def unreachable(world: ObservedWorld, *hosts: str) -> ObservedWorld:
    """The same world with some hosts unknown (their domains invisible)."""
    new = {
        n: ObservedHost(n, reachable=False, reason="connection refused") if n in hosts else h
        for n, h in world.hosts.items()
    }
    return replace(world, hosts=new)


def reachable_again(world: ObservedWorld, before: ObservedWorld) -> ObservedWorld:
    """Bring back hosts that `unreachable` hid, as they were in `before`."""
    new = {n: (before.hosts[n] if not h.reachable else h) for n, h in world.hosts.items()}
    return replace(world, hosts=new)
