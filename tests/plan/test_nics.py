"""NIC rules: a changed `spec.networks` is hot-plugged and unplugged, never a restart."""

from __future__ import annotations

from dataclasses import replace

from reconciler.model import Network, NetworkKind
from reconciler.observe.types import ObservedNic, ObservedWorld
from reconciler.plan.actions import ActionKind
from reconciler.plan.specs import nic_mac

from .builders import converge, desired, domain_of, host, kinds, ohost, run, vm, world

LAN = Network(NetworkKind.NETWORK, "lan")
USER = Network(NetworkKind.USER)


def _running(d_vms: list) -> tuple:  # type: ignore[type-arg]
    d = desired(hosts=[host("h1", 1)], vms=d_vms)
    w = converge(d, world(ohost("h1")))
    assert run(d, w).empty
    return d, w


def _with_nics(w: ObservedWorld, name: str, nics: tuple[ObservedNic, ...]) -> ObservedWorld:
    found = domain_of(w, name)
    assert found is not None
    h, _dom = found
    obs = w.hosts[h]
    doms = tuple(replace(x, nics=nics) if x.name == name else x for x in obs.domains)
    return replace(w, hosts={**w.hosts, h: replace(obs, domains=doms)})


def test_new_vm_gets_its_nics_in_its_definition() -> None:
    d = desired(hosts=[host("h1", 1)], vms=[replace(vm("a"), networks=(LAN, USER))])
    p = run(d, world(ohost("h1")))
    assert not [a for a in p.actions if a.kind in (ActionKind.ATTACH_NIC, ActionKind.DETACH_NIC)]
    w = converge(d, world(ohost("h1")))
    found = domain_of(w, "a")
    assert found is not None
    assert [(n.kind, n.source) for n in found[1].nics] == [("network", "lan"), ("user", None)]


def test_added_network_is_hot_plugged_without_restart() -> None:
    d, w = _running([vm("a")])  # one user-mode NIC by default
    d2 = replace(d, vms={"a": replace(d.vms["a"], networks=(USER, LAN))})
    p = run(d2, w)
    assert kinds(p) == [("attach-nic", "vm/a")]
    (attach,) = p.actions
    vmid = p.ids["vm/a"]
    assert attach.nic.mac == nic_mac(vmid, 1)  # type: ignore[union-attr]
    assert attach.nic.source == "lan"  # type: ignore[union-attr]
    assert run(d2, converge(d2, w)).empty


def test_removed_or_moved_nics_are_unplugged_then_plugged_again() -> None:
    d, w = _running([replace(vm("a"), networks=(USER, LAN))])
    vmid = run(d, w).ids["vm/a"]
    # the first NIC moves from user-mode to the lan network; the second is dropped
    d2 = replace(d, vms={"a": replace(d.vms["a"], networks=(LAN,))})
    p = run(d2, w)
    assert sorted(a.id for a in p.actions) == [
        f"detach-nic:vm/a@{nic_mac(vmid, 0)}",
        f"detach-nic:vm/a@{nic_mac(vmid, 1)}",
    ]
    assert not [a for a in p.actions if a.kind.value.endswith("domain")]
    w2 = converge(d2, w)
    found = domain_of(w2, "a")
    assert found is not None
    assert [(n.mac, n.kind, n.source) for n in found[1].nics] == [
        (nic_mac(vmid, 0), "network", "lan")
    ]
    assert run(d2, w2).empty


def test_drift_a_nic_added_behind_our_back_is_removed_and_a_lost_one_restored() -> None:
    d, w = _running([vm("a")])
    vmid = run(d, w).ids["vm/a"]
    stranger = ObservedNic("52:54:00:aa:bb:cc", "bridge", "br9", "e1000")
    w2 = _with_nics(w, "a", (stranger,))
    p = run(d, w2)
    assert sorted(a.id for a in p.actions) == [
        f"attach-nic:vm/a@{nic_mac(vmid, 0)}",
        "detach-nic:vm/a@52:54:00:aa:bb:cc",
    ]
    assert run(d, converge(d, w2)).empty


def test_no_nics_means_none() -> None:
    _d, w = _running([replace(vm("a"), networks=())])
    found = domain_of(w, "a")
    assert found is not None
    assert found[1].nics == ()
