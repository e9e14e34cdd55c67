"""Rules for desired VMs: create, cold resize, replace on image change, start and stop.

For every VM in the spec this decides, from the observed domains and root disks, what has
to happen and records a `VmInfo` that the attachment rules build on (where the VM is, whether
its domain is re-created by this plan, which lifecycle actions an attach waits for).
Existing VMs are handled before new ones so that placements see the capacity resizes take.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from reconciler import identity
from reconciler.model import Image, InstanceType, VirtualMachine
from reconciler.observe.types import DomainState
from reconciler.plan.actions import ActionKind, ChangeOp
from reconciler.plan.images import parent_of
from reconciler.plan.specs import (
    GIB,
    act,
    domain_text,
    gib,
    observed_domain,
    wanted_text,
)
from reconciler.plan.vm_common import VmBase, VmInfo, ids_of
from reconciler.plan.world import DomainRef, active

K = ActionKind

__all__ = ["VmInfo", "VmRules"]


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
        name = vm.meta.name
        res = f"vm/{name}"
        refs = self.world.domains_of(name)
        ref = refs[0]
        dom = ref.domain
        info = VmInfo(host=ref.host, kept=ref, targets={d.target for d in dom.disks})
        self.draft.placements[res] = ref.host
        self._duplicates(name, refs[1:])
        types = self._types(vm)
        if isinstance(types, str):
            self._block(info, name, "InvalidSpec", types)
            return
        itype, image = types
        spec = self._spec(vm, itype, image, ref.host)
        spec = replace(spec, name=dom.name)
        info.spec = spec
        self.infos[name] = info
        root = self.world.roots.get(name)
        if (
            self.world.storage_ok
            and root is not None
            and root.parent is not None
            and root.parent != parent_of(self.world, image)
        ):
            self._replace(vm, itype, image, info, root.parent)
            return
        is_active = active(dom)
        resized = dom.vcpus != itype.cpu or dom.memory_mib != itype.ram
        assert dom.mark is not None
        rehash = dom.mark.spec_hash != spec.spec_hash or (
            dom.virt_type in ("kvm", "qemu") and dom.virt_type != spec.virt_type.value
        )
        ok = self.world.storage_ok
        root_name = identity.root_disk_name(name)
        need_clone = ok and root is None
        if need_clone and self.world.image(root_name) is not None:
            self._block(info, name, "NameConflict", f"RBD image {root_name} is not this VM's")
            need_clone = False
        if need_clone:
            src = self.images.ensure(image.meta.name, plan_import=False)
            if src.parent is None:
                self._block(info, name, src.reason, src.message)
                need_clone = False
        grow = ok and root is not None and root.size_bytes < itype.disk * GIB
        if not ok and (resized or rehash):
            self.draft.block(res, "StorageUnknown", "storage unreachable: only start/stop")
            resized = rehash = False
        if resized:
            why = self.ledger.resize(ref.host, itype.cpu - dom.vcpus, itype.ram - dom.memory_mib)
            if why is not None:
                msg = f"cold resize to {itype.cpu} CPU, {itype.ram} MiB does not fit: {why}"
                self._block(info, name, "Unschedulable", msg)
                resized = rehash = grow = False
        restart = resized and is_active
        stop = restart or (not vm.running and is_active)
        start = vm.running and (restart or dom.state == DomainState.SHUTOFF)
        ids: list[str] = []
        stop_id = clone_id = grow_id = define_id = None
        if stop:
            stop_id = self.draft.add(
                act(
                    K.STOP_DOMAIN,
                    res,
                    host=ref.host,
                    domain=spec,
                    before=dom.state.value,
                    after="shutoff",
                    reason="cold resize" if restart else "running: false",
                )
            )
            ids.append(stop_id)
        if need_clone:
            clone_id = self._clone(vm, itype, image, spec, ())
        if grow and root is not None:
            tell = dom.state == DomainState.RUNNING and not stop
            grow_id = self.draft.add(
                act(
                    K.RESIZE_VOLUME,
                    res,
                    image_name=root_name,
                    size_bytes=itype.disk * GIB,
                    host=ref.host if tell else None,
                    domain=spec if tell else None,
                    depends_on=ids_of(stop_id),
                    before=gib(root.size_bytes),
                    after=f"{itype.disk} GiB",
                    reason="root disk grows with the instance type",
                )
            )
        if resized or rehash:
            define_id = self.draft.add(
                act(
                    K.DEFINE_DOMAIN,
                    res,
                    host=ref.host,
                    domain=spec,
                    depends_on=ids_of(stop_id, clone_id, grow_id),
                    before=domain_text(dom, root),
                    after=wanted_text(vm, itype),
                    reason="instance type changed" if resized else "spec changed",
                )
            )
            ids.append(define_id)
        if start:
            ids.append(
                self.draft.add(
                    act(
                        K.START_DOMAIN,
                        res,
                        host=ref.host,
                        domain=spec,
                        depends_on=ids_of(stop_id, clone_id, grow_id, define_id),
                        before=dom.state.value,
                        after="running",
                        reason="cold resize" if restart else "domain is not running",
                    )
                )
            )
        info.ready = tuple(ids)
        info.running_stable = dom.state == DomainState.RUNNING and not stop
        if ids or clone_id or grow_id:
            why = (
                "cold resize: stop, redefine, start"
                if restart
                else "start"
                if start and not resized
                else "stop (running: false)"
                if stop
                else "root disk grows"
                if grow and not resized
                else ""
            )
            self.draft.change(
                res, ChangeOp.UPDATE, domain_text(dom, root), wanted_text(vm, itype, ref.host), why
            )

    def _duplicates(self, name: str, extra: list[DomainRef]) -> None:
        res = f"vm/{name}"
        for ref in extra:
            if not (self.world.all_known and self.world.storage_ok):
                self.draft.block(
                    res,
                    "DeferredWhileUnknown",
                    f"duplicate domain on {ref.host} is kept until every host and Ceph are known",
                )
                continue
            self.draft.add(
                act(
                    K.DESTROY_DOMAIN,
                    res,
                    ref.host,
                    host=ref.host,
                    domain=observed_domain(self.world.settings, ref.domain),
                    before=f"duplicate on {ref.host}",
                    after=None,
                    reason="duplicate domain; the copy on the lowest-pmid host is kept",
                )
            )

    def _replace(
        self, vm: VirtualMachine, itype: InstanceType, image: Image, info: VmInfo, old: str
    ) -> None:
        name = vm.meta.name
        res = f"vm/{name}"
        ref = info.kept
        assert ref is not None
        assert info.spec is not None
        if not self.world.all_known:
            self._block(
                info,
                name,
                "DeferredWhileUnknown",
                f"image changed ({old} -> {vm.image}); the VM is replaced only when "
                f"every host is known (unreachable: {self.world.unknown_text()})",
            )
            return
        src = self.images.ensure(image.meta.name, plan_import=False)
        if src.parent is None:
            self._block(info, name, src.reason, src.message)
            return
        dom = ref.domain
        why = self.ledger.resize(ref.host, itype.cpu - dom.vcpus, itype.ram - dom.memory_mib)
        if why is not None:
            self._block(info, name, "Unschedulable", f"replacement does not fit: {why}")
            return
        spec = info.spec
        destroy = self.draft.add(
            act(
                K.DESTROY_DOMAIN,
                res,
                host=ref.host,
                domain=spec,
                before=f"image {old}",
                after=None,
                reason="image changed",
            )
        )
        root_name = identity.root_disk_name(name)
        delete = self.draft.add(
            act(
                K.DELETE_ROOT,
                res,
                image_name=root_name,
                depends_on=(destroy,),
                before=f"{root_name} from {old}",
                after=None,
                reason="image changed",
            )
        )
        info.fresh = True
        info.targets = {"vda"}
        self._create_chain(vm, itype, image, info, host=ref.host, after=(delete,))
        self.draft.change(
            res,
            ChangeOp.REPLACE,
            f"image {old}",
            f"image {vm.image} ({src.parent})",
            "image changed: domain and root disk are re-created, data on the old root disk "
            "is lost, volumes are re-attached",
        )

    # --- VMs without a domain on any reachable host ------------------------------------------

    def _missing(self, vm: VirtualMachine) -> None:
        name = vm.meta.name
        res = f"vm/{name}"
        info = VmInfo(fresh=True, targets={"vda"})
        self.infos[name] = info
        w = self.world
        root = w.roots.get(name)
        root_name = identity.root_disk_name(name)
        if not w.storage_ok:
            reason = "HostUnknown" if w.unknown else "StorageUnknown"
            self._block(
                info,
                name,
                reason,
                f"storage unreachable ({w.observed.storage.reason}): not created",
            )
            return
        if root is None and w.image(root_name) is not None:
            self._block(info, name, "NameConflict", f"RBD image {root_name} is not this VM's")
            return
        if w.unknown and (root is not None or vm.host in w.unknown):
            why = f"root disk {root_name} exists" if root is not None else f"pinned to {vm.host}"
            self._block(
                info,
                name,
                "HostUnknown",
                f"{why}; it may exist on unreachable host(s) {w.unknown_text()}, so it "
                "is not created elsewhere",
            )
            return
        if root is not None and root.watchers:
            self._block(
                info,
                name,
                "RootInUse",
                f"root disk {root_name} is open by a client volctl cannot see "
                f"(watchers: {', '.join(root.watchers)})",
            )
            return
        types = self._types(vm)
        if isinstance(types, str):
            self._block(info, name, "InvalidSpec", types)
            return
        itype, image = types
        reclone = root is not None and root.parent not in (None, parent_of(w, image))
        if root is None or reclone:
            src = self.images.ensure(image.meta.name, plan_import=False)
            if src.parent is None:
                self._block(info, name, src.reason, src.message)
                return
        host, why = self.ledger.place(
            name, itype.cpu, itype.ram, vm.anti_affinity_group, vm.host, arch=image.arch
        )
        if host is None:
            self._block(
                info, name, "Unschedulable", f"no host fits {itype.cpu} CPU, {itype.ram} MiB: {why}"
            )
            return
        info.host = host
        info.spec = self._spec(vm, itype, image, host)
        self.draft.placements[res] = host
        after: tuple[str, ...] = ()
        if reclone:
            after = (
                self.draft.add(
                    act(
                        K.DELETE_ROOT,
                        res,
                        image_name=root_name,
                        before=f"{root_name} from {root.parent if root else ''}",
                        after=None,
                        reason="image changed",
                    )
                ),
            )
        self._create_chain(
            vm, itype, image, info, host=host, after=after, root=None if reclone else root
        )
        if root is None or reclone:
            self.draft.change(res, ChangeOp.CREATE, None, wanted_text(vm, itype, host))
        else:
            self.draft.change(
                res,
                ChangeOp.CREATE,
                "domain missing, root disk exists",
                wanted_text(vm, itype, host),
                "domain re-defined on its root disk",
            )
