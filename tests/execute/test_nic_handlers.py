"""The NIC handlers: attach is "ensure plugged", detach waits until the NIC left the domain."""

from __future__ import annotations

import pytest

from reconciler.execute.handlers import Backends, DetachPending, run_action
from reconciler.payload import DomainSpec, NicKind, NicSpec
from reconciler.plan.actions import AttachNic, DetachNic

from .fakeworld import CEPH, FakeHypervisor, FakeStorage

LAN = NicSpec("52:54:00:00:00:09", NicKind.NETWORK, "lan")


def _world() -> tuple[FakeHypervisor, Backends, DomainSpec]:
    storage = FakeStorage()
    storage.add_base("vm-a-root")
    hv = FakeHypervisor("h1", storage)
    spec = DomainSpec("a", 1, "h", 1, 512, "rbd/vm-a-root", "/tmp/a.log", CEPH)
    hv.define(spec)
    hv.start("a")
    return hv, Backends({"h1": hv}, storage, detach_wait=0.3, detach_poll=0.05), spec


def _macs(hv: FakeHypervisor) -> list[str]:
    return [n.mac for n in hv.observe().domains[0].nics]


def test_attach_then_detach_a_nic() -> None:
    hv, b, spec = _world()
    attach = AttachNic(resource="vm/a", qualifier=LAN.mac, host="h1", domain=spec, nic=LAN)
    run_action(attach, b)
    run_action(attach, b)  # already plugged: done
    assert _macs(hv) == [LAN.mac]
    detach = DetachNic(resource="vm/a", qualifier=LAN.mac, host="h1", domain=spec, mac=LAN.mac)
    run_action(detach, b)
    assert _macs(hv) == []
    run_action(detach, b)  # already gone: done


def test_an_unplug_the_guest_does_not_acknowledge_is_pending() -> None:
    hv, b, spec = _world()
    run_action(AttachNic(resource="vm/a", host="h1", domain=spec, nic=LAN), b)
    hv.detach_nic = lambda _d, _m: None  # type: ignore[method-assign] # request ignored
    with pytest.raises(DetachPending):
        run_action(DetachNic(resource="vm/a", host="h1", domain=spec, mac=LAN.mac), b)
    assert _macs(hv) == [LAN.mac]
