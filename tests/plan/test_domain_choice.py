"""Per-host domain choices: kvm or TCG, the image's architecture, NICs with stable MACs."""

from __future__ import annotations

from dataclasses import replace

from reconciler import identity
from reconciler.model import Network, NetworkKind, VirtType
from reconciler.observe.types import (
    DomainState,
    ObservedDomain,
    ObservedHost,
    ObservedImage,
    OwnerMark,
)
from reconciler.payload import NicKind, NicSpec
from reconciler.payload import VirtType as DomainType
from reconciler.plan.actions import Action, ActionKind, Plan
from reconciler.plan.specs import nic_mac, vm_hash

from .builders import (
    GIB,
    SETTINGS,
    desired,
    host,
    image,
    itype,
    ohost,
    reasons,
    run,
    vm,
    world,
)

KVM_HOST = {"x86_64": ("kvm", "qemu"), "i686": ("kvm", "qemu")}
TCG_HOST = {"x86_64": ("qemu",), "i686": ("qemu",), "aarch64": ("qemu",)}
ARM_HOST = {"aarch64": ("kvm", "qemu")}


def _define(p: Plan, name: str) -> Action:
    return next(a for a in p.actions if a.id == f"define-domain:vm/{name}")


def _caps(
    name: str, guests: dict[str, tuple[str, ...]], domains: tuple[ObservedDomain, ...] = ()
) -> ObservedHost:
    return replace(ohost(name, domains=domains), guests=guests)


def test_kvm_where_offered_else_tcg() -> None:
    d = desired(
        hosts=[host("h1", 1), host("h2", 2)],
        vms=[vm("a", host_="h1"), vm("b", host_="h2")],
    )
    p = run(d, world(_caps("h1", KVM_HOST), _caps("h2", TCG_HOST)))
    a, b = _define(p, "a").domain, _define(p, "b").domain
    assert a is not None
    assert b is not None
    assert (a.virt_type, b.virt_type) == (DomainType.KVM, DomainType.QEMU)
    assert a.spec_hash != b.spec_hash  # the type is part of what the domain is made of


def test_host_spec_forces_the_type() -> None:
    h1 = replace(host("h1", 1), virt_type=VirtType.QEMU)
    p = run(desired(hosts=[h1], vms=[vm("a")]), world(_caps("h1", KVM_HOST)))
    spec = _define(p, "a").domain
    assert spec is not None
    assert spec.virt_type == DomainType.QEMU


def test_a_changed_type_redefines_but_never_restarts_a_running_vm() -> None:
    it, img = itype("small"), image("deb")
    old = vm_hash(it, img, DomainType.QEMU)
    dom = ObservedDomain(
        "a", "u-a", DomainState.RUNNING, 1, 1024, OwnerMark("a", 1, old), virt_type="qemu"
    )
    d = desired(hosts=[host("h1", 1)], vms=[vm("a")])
    root = ObservedImage(
        "vm-a-root",
        10 * GIB,
        {identity.META_MANAGED_BY: "volctl", identity.META_KIND: "root", identity.META_NAME: "a",
         identity.META_ID: "1"},
        parent=f"rbd/img-deb@{identity.BASE_SNAPSHOT}",
    )  # fmt: skip
    base = ObservedImage(
        "img-deb",
        GIB,
        {identity.META_MANAGED_BY: "volctl", identity.META_KIND: "image",
         identity.META_NAME: "deb", identity.META_ID: "1"},
        snapshots=(identity.BASE_SNAPSHOT,),
        protected_snapshots=(identity.BASE_SNAPSHOT,),
    )  # fmt: skip
    p = run(d, world(_caps("h1", KVM_HOST, (dom,)), images=[root, base]))
    kinds = [a.kind for a in p.actions if a.resource == "vm/a" and a.kind.name.endswith("DOMAIN")]
    assert kinds == [ActionKind.DEFINE_DOMAIN], p.actions
    spec = _define(p, "a").domain
    assert spec is not None
    assert spec.virt_type == DomainType.KVM


def test_placement_only_on_hosts_that_run_the_arch() -> None:
    arm = replace(image("arm", 2), arch="aarch64")
    d = desired(
        hosts=[host("h1", 1), host("h2", 2)],
        vms=[vm("x", image_="arm"), vm("y")],
        images=[image("deb"), arm],
    )
    p = run(d, world(_caps("h1", KVM_HOST), _caps("h2", ARM_HOST)))
    assert p.placements == {"vm/x": "h2", "vm/y": "h1"}
    spec = _define(p, "x").domain
    assert spec is not None
    assert spec.arch == "aarch64"
    assert spec.virt_type == DomainType.KVM


def test_no_host_runs_the_arch_is_unschedulable_with_the_reason() -> None:
    arm = replace(image("arm", 2), arch="aarch64")
    d = desired(hosts=[host("h1", 1)], vms=[vm("x", image_="arm")], images=[arm])
    p = run(d, world(_caps("h1", KVM_HOST)))
    assert reasons(p) == {"vm/x": "Unschedulable"}
    assert "cannot run aarch64 guests (offers i686, x86_64)" in p.blocked[0].message


def test_nics_default_chain_and_stable_macs() -> None:
    nets = (Network(NetworkKind.NETWORK, "lan"), Network(NetworkKind.BRIDGE, "br0"))
    h1 = replace(host("h1", 1), default_networks=(Network(NetworkKind.BRIDGE, "brh"),))
    d = desired(
        hosts=[h1, host("h2", 2)],
        vms=[
            replace(vm("a", host_="h2"), networks=nets),
            vm("b", host_="h1"),
            vm("c", host_="h2"),
            replace(vm("e", host_="h2"), networks=()),
        ],
    )
    w = world(_caps("h1", KVM_HOST), _caps("h2", KVM_HOST))
    p = run(d, w)
    ids = p.ids

    def nics(name: str) -> tuple[NicSpec, ...]:
        spec = _define(p, name).domain
        assert spec is not None
        return spec.nics

    a_id = ids["vm/a"]
    assert nics("a") == (
        NicSpec(nic_mac(a_id, 0), NicKind.NETWORK, "lan"),
        NicSpec(nic_mac(a_id, 1), NicKind.BRIDGE, "br0"),
    )
    assert nics("b") == (NicSpec(nic_mac(ids["vm/b"], 0), NicKind.BRIDGE, "brh"),)
    assert nics("c") == (NicSpec(nic_mac(ids["vm/c"], 0), NicKind.USER),)  # no default: user
    assert nics("e") == ()
    cfg = replace(SETTINGS, default_networks=(Network(NetworkKind.NETWORK, "cfg"),))
    assert run(d, w, cfg).actions != p.actions
    c2 = _define(run(d, w, cfg), "c").domain
    assert c2 is not None
    assert c2.nics == (NicSpec(nic_mac(ids["vm/c"], 0), NicKind.NETWORK, "cfg"),)


def test_mac_is_deterministic_distinct_and_local() -> None:
    assert nic_mac(1, 0) == "52:54:00:00:00:08"
    assert nic_mac(1, 1) == "52:54:00:00:00:09"
    assert nic_mac(0x1FFFFF, 7) == "52:54:00:ff:ff:ff"
    macs = {nic_mac(v, i) for v in range(1, 3000) for i in range(8)}
    assert len(macs) == 2999 * 8
