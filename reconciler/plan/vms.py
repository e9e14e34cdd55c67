"""Rules for desired VMs: create, cold resize, replace on image change, start and stop.

For every VM in the spec this decides, from the observed domains and root disks, what has
to happen and records a `VmInfo` that the attachment rules build on (where the VM is, whether
its domain is re-created by this plan, which lifecycle actions an attach waits for).
Existing VMs are handled before new ones so that placements see the capacity resizes take.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler import identity
from reconciler.model import Image, InstanceType, VirtualMachine
from reconciler.observe.types import DomainState, ObservedImage
from reconciler.payload import DomainSpec
from reconciler.plan.actions import (
    ChangeOp,
    DefineDomain,
    DeleteRoot,
    DestroyDomain,
    ResizeVolume,
    StartDomain,
    StopDomain,
)
from reconciler.plan.images import NoSource, parent_of
from reconciler.plan.reasons import BlockReason
from reconciler.plan.specs import (
    GIB,
    domain_text,
    gib,
    observed_domain,
    wanted_text,
)
from reconciler.plan.vm_common import VmBase, VmInfo, ids_of
from reconciler.plan.world import DomainRef, active

R = BlockReason

__all__ = ["VmInfo", "VmRules"]


@dataclass(frozen=True)
class _Kept:
    """An existing VM being planned: the spec side and the domain volctl keeps for it."""

    vm: VirtualMachine
    itype: InstanceType
    image: Image
    ref: DomainRef  # the kept domain (the first in host order)
    spec: DomainSpec  # the desired domain, under the kept domain's name
    root: ObservedImage | None  # its root disk, if Ceph has it

    @property
    def name(self) -> str:
        return self.vm.meta.name

    @property
    def res(self) -> str:
        return f"vm/{self.vm.meta.name}"


@dataclass(frozen=True)
class _Steps:
    """What an existing VM needs, decided before any action is built."""

    resized: bool  # vCPUs or memory change: a cold resize
    redefine: bool  # resized, or the spec hash changed
    clone: bool  # the root disk is missing and is cloned again
    grow: bool  # the root disk is smaller than the instance type's disk
    restart: bool  # stop and start again (a cold resize of an active domain)
    stop: bool
    start: bool

    def why(self) -> str:
        """The reason shown with the VM's update."""
        if self.restart:
            return "cold resize: stop, redefine, start"
        if self.start and not self.resized:
            return "start"
        if self.stop:
            return "stop (running: false)"
        if self.grow and not self.resized:
            return "root disk grows"
        return ""


@dataclass(frozen=True)
class _Built:
    """The ids of the actions built for an existing VM (None: not planned)."""

    stop: str | None = None
    clone: str | None = None
    grow: str | None = None
    define: str | None = None
    start: str | None = None

    @property
    def ready(self) -> tuple[str, ...]:
        """The lifecycle actions an attach waits for."""
        return ids_of(self.stop, self.define, self.start)

    @property
    def any(self) -> bool:
        return bool(self.ready or self.clone or self.grow)


_NOTHING = _Built()


@dataclass
class VmRules(VmBase):
    def run(self) -> dict[str, VmInfo]:
        vms = self.world.desired.vms
        names = sorted(vms)
        for name in names:  # existing first: their resizes take capacity before placements
            if self.world.domains_of(name):
                self._existing(vms[name])
        for name in names:
            if name not in self.infos:
                self._missing(vms[name])
        return self.infos

    # --- VMs with a domain on a reachable host -----------------------------------------------

    def _existing(self, vm: VirtualMachine) -> None:
        """Keep the first domain (host order); redefine, resize, start or stop it in place."""
        name = vm.meta.name
        refs = self.world.domains_of(name)
        ref = refs[0]
        # the live disks' targets and the persistent definition's: a disk only one of them
        # holds still owns its target there (libvirt refuses a second disk on it)
        used = {d.target for d in ref.domain.disks} | ref.domain.config_targets
        info = VmInfo(host=ref.host, kept=ref, targets=used)
        self.draft.placements[f"vm/{name}"] = ref.host
        if len(refs) > 1:
            self._duplicates(name, refs[1:])
        types = self._types(vm)
        if isinstance(types, str):
            self._block(info, name, R.INVALID_SPEC, types)
            return
        itype, image = types
        info.spec = self._spec(vm, itype, image, ref.host, name=ref.domain.name)
        self.infos[name] = info
        k = _Kept(vm, itype, image, ref, info.spec, self.world.roots.get(name))
        old = k.root.parent if k.root is not None else None
        if self.world.storage_ok and old is not None and old != parent_of(self.world, image):
            self._replace(k, info, old)
            return
        steps = self._decide(k, info)
        built = self._build(k, steps)
        info.ready = built.ready
        info.running_stable = ref.domain.state == DomainState.RUNNING and not steps.stop
        if built.any:
            before = domain_text(ref.domain, k.root)
            after = wanted_text(vm, itype, ref.host)
            self.draft.change(k.res, ChangeOp.UPDATE, before, after, steps.why())

    def _decide(self, k: _Kept, info: VmInfo) -> _Steps:
        """The steps an existing VM needs; blocks what storage or capacity does not allow."""
        dom, itype, ok = k.ref.domain, k.itype, self.world.storage_ok
        resized = dom.vcpus != itype.cpu or dom.memory_mib != itype.ram
        rehash = k.ref.mark.spec_hash != k.spec.spec_hash or (
            dom.virt_type in ("kvm", "qemu") and dom.virt_type != k.spec.virt_type.value
        )
        clone = ok and k.root is None and self._can_reclone(k, info)
        grow = ok and k.root is not None and k.root.size_bytes < itype.disk * GIB
        if not ok and (resized or rehash):
            self.draft.block(k.res, R.STORAGE_UNKNOWN, "storage unreachable: only start/stop")
            resized = rehash = False
        if resized:
            why = self.ledger.resize(k.ref.host, itype.cpu - dom.vcpus, itype.ram - dom.memory_mib)
            if why is not None:
                msg = f"cold resize to {itype.cpu} CPU, {itype.ram} MiB does not fit: {why}"
                self._block(info, k.name, R.UNSCHEDULABLE, msg)
                resized = rehash = grow = False
        is_active = active(dom)
        restart = resized and is_active
        stop = restart or (not k.vm.running and is_active)
        return _Steps(
            resized=resized,
            redefine=resized or rehash,
            clone=clone,
            grow=grow,
            restart=restart,
            stop=stop,
            start=k.vm.running and (restart or dom.state == DomainState.SHUTOFF),
        )

    def _can_reclone(self, k: _Kept, info: VmInfo) -> bool:
        """The kept domain lost its root disk: may it be cloned again? (blocks it if not)"""
        root_name = identity.root_disk_name(k.name)
        if self.world.image(root_name) is not None:
            self._block(info, k.name, R.NAME_CONFLICT, f"RBD image {root_name} is not this VM's")
            return False
        src = self.images.ensure(k.image.meta.name, plan_import=False)
        if isinstance(src, NoSource):
            self._block(info, k.name, src.reason, src.message)
            return False
        return True

    def _build(self, k: _Kept, steps: _Steps) -> _Built:
        """stop -> [clone] [grow] -> define -> start, each only when `steps` asks for it."""
        if not (steps.stop or steps.clone or steps.grow or steps.redefine or steps.start):
            return _NOTHING  # a converged VM: the common case at scale
        dom, host = k.ref.domain, k.ref.host
        stop = clone = grow = define = start = None
        if steps.stop:
            stop = self.draft.add(
                StopDomain(
                    resource=k.res,
                    host=host,
                    domain=k.spec,
                    before=dom.state.value,
                    after="shutoff",
                    reason="cold resize" if steps.restart else "running: false",
                )
            )
        if steps.clone:
            clone = self._clone(k.vm, k.itype, k.image, k.spec, ())
        if steps.grow and k.root is not None:
            grow = self.draft.add(self._grow(k, k.root, tell=not steps.stop, after=ids_of(stop)))
        if steps.redefine:
            define = self.draft.add(
                DefineDomain(
                    resource=k.res,
                    host=host,
                    domain=k.spec,
                    depends_on=ids_of(stop, clone, grow),
                    before=domain_text(dom, k.root),
                    after=wanted_text(k.vm, k.itype),
                    reason="instance type changed" if steps.resized else "spec changed",
                )
            )
        if steps.start:
            start = self.draft.add(
                StartDomain(
                    resource=k.res,
                    host=host,
                    domain=k.spec,
                    depends_on=ids_of(stop, clone, grow, define),
                    before=dom.state.value,
                    after="running",
                    reason="cold resize" if steps.restart else "domain is not running",
                )
            )
        return _Built(stop=stop, clone=clone, grow=grow, define=define, start=start)

    @staticmethod
    def _grow(k: _Kept, root: ObservedImage, *, tell: bool, after: tuple[str, ...]) -> ResizeVolume:
        """Grow the root disk; a running domain that is not stopped first is told at once."""
        told = tell and k.ref.domain.state == DomainState.RUNNING
        return ResizeVolume(
            resource=k.res,
            image_name=identity.root_disk_name(k.name),
            size_bytes=k.itype.disk * GIB,
            host=k.ref.host if told else None,
            domain=k.spec if told else None,
            depends_on=after,
            before=gib(root.size_bytes),
            after=f"{k.itype.disk} GiB",
            reason="root disk grows with the instance type",
        )

    def _duplicates(self, name: str, extra: list[DomainRef]) -> None:
        res = f"vm/{name}"
        for ref in extra:
            if not (self.world.all_known and self.world.storage_ok):
                self.draft.block(
                    res,
                    R.DEFERRED_WHILE_UNKNOWN,
                    f"duplicate domain on {ref.host} is kept until every host and Ceph are known",
                )
                continue
            self.draft.add(
                DestroyDomain(
                    resource=res,
                    qualifier=ref.host,
                    host=ref.host,
                    domain=observed_domain(self.world.settings, ref.domain, ref.mark),
                    before=f"duplicate on {ref.host}",
                    after=None,
                    reason="duplicate domain; the copy on the lowest-pmid host is kept",
                )
            )

    def _replace(self, k: _Kept, info: VmInfo, old: str) -> None:
        """The image changed: destroy the domain and root disk, then create both again."""
        vm, name, ref = k.vm, k.name, k.ref
        if not self.world.all_known:
            self._block(
                info,
                name,
                R.DEFERRED_WHILE_UNKNOWN,
                f"image changed ({old} -> {vm.image}); the VM is replaced only when "
                f"every host is known (unreachable: {self.world.unknown_text()})",
            )
            return
        src = self.images.ensure(k.image.meta.name, plan_import=False)
        if isinstance(src, NoSource):
            self._block(info, name, src.reason, src.message)
            return
        dom = ref.domain
        why = self.ledger.resize(ref.host, k.itype.cpu - dom.vcpus, k.itype.ram - dom.memory_mib)
        if why is not None:
            self._block(info, name, R.UNSCHEDULABLE, f"replacement does not fit: {why}")
            return
        destroy = self.draft.add(
            DestroyDomain(
                resource=k.res,
                host=ref.host,
                domain=k.spec,
                before=f"image {old}",
                after=None,
                reason="image changed",
            )
        )
        root_name = identity.root_disk_name(name)
        delete = self.draft.add(
            DeleteRoot(
                resource=k.res,
                image_name=root_name,
                depends_on=(destroy,),
                before=f"{root_name} from {old}",
                after=None,
                reason="image changed",
            )
        )
        info.fresh = True
        info.targets = {"vda"}
        self._create_chain(vm, k.itype, k.image, info, k.spec, host=ref.host, after=(delete,))
        self.draft.change(
            k.res,
            ChangeOp.REPLACE,
            f"image {old}",
            f"image {vm.image} ({src.parent})",
            "image changed: domain and root disk are re-created, data on the old root disk "
            "is lost, volumes are re-attached",
        )

    # --- VMs without a domain on any reachable host ------------------------------------------

    def _missing(self, vm: VirtualMachine) -> None:
        """Place and create the VM, on its existing root disk if there is one of its own."""
        name = vm.meta.name
        res = f"vm/{name}"
        info = VmInfo(fresh=True, targets={"vda"})
        self.infos[name] = info
        w = self.world
        root = w.roots.get(name)
        held = self._why_not_create(vm, root)
        if held is not None:
            self._block(info, name, *held)
            return
        types = self._types(vm)
        if isinstance(types, str):
            self._block(info, name, R.INVALID_SPEC, types)
            return
        itype, image = types
        reclone = root is not None and root.parent not in (None, parent_of(w, image))
        if root is None or reclone:
            src = self.images.ensure(image.meta.name, plan_import=False)
            if isinstance(src, NoSource):
                self._block(info, name, src.reason, src.message)
                return
        host, why = self.ledger.place(
            name, itype.cpu, itype.ram, vm.anti_affinity_group, vm.host, arch=image.arch
        )
        if host is None:
            msg = f"no host fits {itype.cpu} CPU, {itype.ram} MiB: {why}"
            self._block(info, name, R.UNSCHEDULABLE, msg)
            return
        info.host = host
        spec = info.spec = self._spec(vm, itype, image, host)
        self.draft.placements[res] = host
        after: tuple[str, ...] = ()
        if reclone and root is not None:
            after = (self.draft.add(_delete_stale_root(name, root)),)
        kept_root = None if reclone else root
        self._create_chain(vm, itype, image, info, spec, host=host, after=after, root=kept_root)
        wanted = wanted_text(vm, itype, host)
        if kept_root is None:
            self.draft.change(res, ChangeOp.CREATE, None, wanted)
        else:
            before = "domain missing, root disk exists"
            why = "domain re-defined on its root disk"
            self.draft.change(res, ChangeOp.CREATE, before, wanted, why)

    def _why_not_create(
        self, vm: VirtualMachine, root: ObservedImage | None
    ) -> tuple[BlockReason, str] | None:
        """Why a VM without a domain must not be created now (partial knowledge, clashes)."""
        w = self.world
        root_name = identity.root_disk_name(vm.meta.name)
        if not w.storage_ok:
            reason = R.HOST_UNKNOWN if w.unknown else R.STORAGE_UNKNOWN
            return reason, f"storage unreachable ({w.observed.storage.reason}): not created"
        if root is None and w.image(root_name) is not None:
            return R.NAME_CONFLICT, f"RBD image {root_name} is not this VM's"
        if w.unknown and (root is not None or vm.host in w.unknown):
            why = f"root disk {root_name} exists" if root is not None else f"pinned to {vm.host}"
            return (
                R.HOST_UNKNOWN,
                f"{why}; it may exist on unreachable host(s) {w.unknown_text()}, so it "
                "is not created elsewhere",
            )
        if root is not None and root.watchers:
            return (
                R.ROOT_IN_USE,
                f"root disk {root_name} is open by a client volctl cannot see "
                f"(watchers: {', '.join(root.watchers)})",
            )
        return None


def _delete_stale_root(name: str, root: ObservedImage) -> DeleteRoot:
    """The root disk of a VM whose image changed while it had no domain."""
    root_name = identity.root_disk_name(name)
    return DeleteRoot(
        resource=f"vm/{name}",
        image_name=root_name,
        before=f"{root_name} from {root.parent}",
        after=None,
        reason="image changed",
    )
