"""What the VM rules share: the per-VM result (`VmInfo`) and the create chain.

`VmInfo` is what the attachment and volume rules need to know about a desired VM: where it
is or will be, whether this plan (re)creates its domain, and which lifecycle actions an
attach must wait for.  The create chain ([import ->] clone root -> define -> [start]) is
used both for new VMs and for VMs replaced after an image change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler import identity
from reconciler.model import Image, InstanceType, VirtualMachine
from reconciler.observe.types import ObservedImage
from reconciler.payload import DomainSpec
from reconciler.plan.actions import Blocked, CloneRoot, DefineDomain, ResizeVolume, StartDomain
from reconciler.plan.draft import Draft
from reconciler.plan.images import Images, Source
from reconciler.plan.placement import Ledger
from reconciler.plan.reasons import BlockReason
from reconciler.plan.specs import GIB, DomainSpecs, gib, root_meta, wanted_text
from reconciler.plan.world import DomainRef, World


@dataclass
class VmInfo:
    spec: DomainSpec | None = None  # the desired domain
    host: str | None = None
    kept: DomainRef | None = None  # the observed domain volctl keeps for this VM
    fresh: bool = False  # this plan (re)creates the domain: nothing is attached to it yet
    ready: tuple[str, ...] = ()  # lifecycle actions an attach must wait for
    running_stable: bool = False  # running now and not stopped or restarted by this plan
    blocked: Blocked | None = None
    targets: set[str] = field(default_factory=set)  # disk targets in use on the domain


@dataclass
class VmBase:
    world: World
    draft: Draft
    ledger: Ledger
    images: Images
    vmids: dict[str, int]
    infos: dict[str, VmInfo] = field(default_factory=dict)
    specs: DomainSpecs = field(init=False)

    def __post_init__(self) -> None:
        w = self.world
        self.specs = DomainSpecs(w.settings, w.desired.hosts, w.observed.hosts)

    # --- helpers ----------------------------------------------------------------------------

    def _block(self, info: VmInfo, name: str, reason: BlockReason, message: str) -> VmInfo:
        resource = f"vm/{name}"
        self.draft.block(resource, reason, message)
        info.blocked = Blocked(resource, reason, message)
        self.infos[name] = info
        return info

    def _spec(
        self,
        vm: VirtualMachine,
        itype: InstanceType,
        image: Image,
        host: str,
        name: str | None = None,
    ) -> DomainSpec:
        """The desired domain on `host` (its Host spec and capabilities pick type and NICs),
        named `name` when the VM keeps an existing domain."""
        return self.specs.build(vm, itype, image, self.vmids[vm.meta.name], host, name=name)

    def _types(self, vm: VirtualMachine) -> tuple[InstanceType, Image] | str:
        itype = self.world.desired.instance_types.get(vm.instance_type)
        image = self.world.desired.images.get(vm.image)
        if itype is None:
            return f"instance type {vm.instance_type} is not in the spec"
        if image is None:
            return f"image {vm.image} is not in the spec"
        return itype, image

    def _create_chain(
        self,
        vm: VirtualMachine,
        itype: InstanceType,
        image: Image,
        info: VmInfo,
        spec: DomainSpec,
        *,
        host: str,
        after: tuple[str, ...],
        root: ObservedImage | None = None,
    ) -> None:
        """[clone root ->] [grow root ->] define -> [start]; root: the existing root disk."""
        name = vm.meta.name
        res = f"vm/{name}"
        deps = list(after)
        if root is None:
            deps.append(self._clone(vm, itype, image, spec, tuple(after)))
        elif root.size_bytes < itype.disk * GIB:
            grow = ResizeVolume(
                resource=res,
                image_name=identity.root_disk_name(name),
                size_bytes=itype.disk * GIB,
                before=gib(root.size_bytes),
                after=f"{itype.disk} GiB",
                reason="root disk grows with the instance type",
            )
            deps.append(self.draft.add(grow))
        define = self.draft.add(
            DefineDomain(
                resource=res,
                host=host,
                domain=spec,
                depends_on=tuple(deps),
                after=wanted_text(vm, itype, host),
                reason="VM created",
            )
        )
        ready = [define]
        if vm.running:
            start = StartDomain(
                resource=res,
                host=host,
                domain=spec,
                depends_on=(define,),
                before="shutoff",
                after="running",
                reason="running: true",
            )
            ready.append(self.draft.add(start))
        info.ready = tuple(ready)

    def _clone(
        self,
        vm: VirtualMachine,
        itype: InstanceType,
        image: Image,
        spec: DomainSpec,
        after: tuple[str, ...],
    ) -> str:
        src = self.images.ensure(image.meta.name)
        # callers asked ensure(plan_import=False) first and blocked the VM without a source
        assert isinstance(src, Source), src
        size = max(itype.disk * GIB, src.size_bytes or 0)
        name = vm.meta.name
        return self.draft.add(
            CloneRoot(
                resource=f"vm/{name}",
                image_name=identity.root_disk_name(name),
                parent=src.parent,
                size_bytes=size,
                depends_on=ids_of(*after, src.dep),
                meta=root_meta(name, spec.vmid, spec.spec_hash),
                after=f"clone of {src.parent}, {itype.disk} GiB",
                reason="root disk",
            )
        )


def ids_of(*ids: str | None) -> tuple[str, ...]:
    return tuple(i for i in ids if i is not None)
