"""Rules for the NICs of existing VMs: hot-plug what the spec adds, unplug what it drops.

NICs are not part of a VM's spec hash, so a changed `spec.networks` never redefines or
restarts a VM: it is applied to the live domain (and its persistent config) by interface
hot-plug and unplug, which is what libvirt allows for virtio NICs on a running guest.  A
domain that this plan creates or re-creates gets its NICs in its definition instead.

Per kept domain, NICs are matched by MAC (derived from the vmid and the NIC's index):
- a desired MAC the domain lacks (live, or in its config) is attached;
- a NIC the spec does not want, or one whose network/bridge changed, is unplugged; a changed
  one is plugged in again by a later pass, once the unplug completed (the guest acknowledges
  a virtio unplug, so it is not instant, and the MAC must be free again).
Attaches wait for the lifecycle actions this plan has for the VM (a redefine, a start).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.observe.types import ObservedNic
from reconciler.payload import NicSpec
from reconciler.plan.actions import AttachNic, ChangeOp, DetachNic
from reconciler.plan.draft import Draft
from reconciler.plan.vm_common import VmInfo


def _text(kind: str, source: str | None) -> str:
    return f"{kind} {source}" if source else kind


def nic_text(nic: NicSpec) -> str:
    return f"{nic.mac} ({_text(nic.kind.value, nic.source)})"


def observed_text(nic: ObservedNic) -> str:
    return f"{nic.mac} ({_text(nic.kind, nic.source)})"


def _same_plug(want: NicSpec, have: ObservedNic) -> bool:
    return want.kind.value == have.kind and (want.source or None) == (have.source or None)


@dataclass
class NicRules:
    draft: Draft
    infos: dict[str, VmInfo]

    def run(self) -> None:
        for name in sorted(self.infos):
            info = self.infos[name]
            if info.fresh or info.kept is None or info.spec is None:
                continue
            self._vm(name, info)

    def _vm(self, name: str, info: VmInfo) -> None:
        assert info.kept is not None
        assert info.spec is not None
        res = f"vm/{name}"
        host, dom, spec = info.kept.host, info.kept.domain, info.spec
        if len(dom.nics) == len(spec.nics) and all(
            have.mac == want.mac and _same_plug(want, have)
            for have, want in zip(dom.nics, spec.nics, strict=True)
        ):
            return  # every NIC in place, in order: nothing to plug or unplug
        have = {n.mac: n for n in dom.nics}
        want = {n.mac: n for n in spec.nics}
        changed = False
        for mac in sorted(have):
            nic = have[mac]
            wanted = want.get(mac)
            if wanted is not None and _same_plug(wanted, nic):
                continue
            why = "not in spec.networks" if wanted is None else f"now {nic_text(wanted)}"
            self.draft.add(
                DetachNic(
                    resource=res,
                    qualifier=mac,
                    host=host,
                    domain=spec,
                    mac=mac,
                    before=observed_text(nic),
                    after=None,
                    reason=f"unplug NIC: {why}",
                )
            )
            changed = True
        for plug in spec.nics:
            if plug.mac in have:  # in place, unplugging, or unplugged above: plugged in later
                continue
            self.draft.add(
                AttachNic(
                    resource=res,
                    qualifier=plug.mac,
                    host=host,
                    domain=spec,
                    nic=plug,
                    depends_on=info.ready,
                    before=None,
                    after=nic_text(plug),
                    reason="hot-plug NIC from spec.networks",
                )
            )
            changed = True
        if changed:
            before = ", ".join(observed_text(n) for n in dom.nics) or "no NIC"
            after = ", ".join(nic_text(n) for n in spec.nics) or "no NIC"
            self.draft.change(res, ChangeOp.UPDATE, before, after, "NICs hot-plugged/unplugged")
