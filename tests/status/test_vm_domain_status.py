"""What status shows about domains: each host's virt type and arches, a VM's MACs and VNC."""

from __future__ import annotations

from dataclasses import replace

from reconciler.model import VirtType
from reconciler.observe.types import ObservedWorld
from reconciler.status.compute import PassInput, compute
from reconciler.status.types import Snapshot
from tests.plan.builders import converge, desired, host, ohost, run, vm, world


def _snapshot(d, w: ObservedWorld) -> Snapshot:  # type: ignore[no-untyped-def]
    return compute(Snapshot(), PassInput("test", 1000.0, 0.1, d, w, run(d, w)))


def test_hosts_show_their_virt_type_and_arches() -> None:
    kvm = {"x86_64": ("kvm", "qemu")}
    d = desired(
        hosts=[host("h1", 1), replace(host("h2", 2), virt_type=VirtType.QEMU), host("h3", 3)]
    )
    w = world(
        replace(ohost("h1"), guests=kvm),
        replace(ohost("h2"), guests=kvm),
        replace(ohost("h3"), guests={"x86_64": ("qemu",), "aarch64": ("qemu",)}),
    )
    hosts = _snapshot(d, w).hosts
    assert (hosts["h1"].virt_type, hosts["h1"].virt_type_forced) == ("kvm", False)
    assert (hosts["h2"].virt_type, hosts["h2"].virt_type_forced) == ("qemu", True)
    assert (hosts["h3"].virt_type, hosts["h3"].arches) == ("qemu", ("aarch64", "x86_64"))


def test_a_vm_shows_its_macs_console_log_and_vnc_address() -> None:
    h1 = replace(host("h1", 1), uri="qemu+tcp://10.0.0.5/system")
    d = desired(hosts=[h1], vms=[replace(vm("a"), vnc=True)])
    w = converge(d, world(ohost("h1")))
    h = w.hosts["h1"]
    dom = replace(
        h.domains[0], vnc="0.0.0.0:5901", console_log="/var/log/libvirt/qemu/a+console.log"
    )
    w = replace(w, hosts={"h1": replace(h, domains=(dom,))})
    details = _snapshot(d, w).resources["vm/a"].details
    assert details["vnc"] == "vnc://10.0.0.5:5901"
    assert details["macs"] == dom.nics[0].mac
    assert details["virtType"] == "qemu"
    assert details["consoleLog"] == "/var/log/libvirt/qemu/a+console.log"
