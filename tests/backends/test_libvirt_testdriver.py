"""LibvirtHypervisor against libvirt's test:/// driver: marks, foreign domains, idempotency."""

from __future__ import annotations

import libvirt
import pytest

from reconciler.errors import Conflict, NotFound
from reconciler.observe.types import DomainState, OwnerMark
from reconciler.payload import DiskSpec

from .conftest import CEPH, INSTALLATION, HostFactory, spec


def vol(image: str, target: str = "vdb") -> DiskSpec:
    return DiskSpec(rbd_image=f"rbd/{image}", target=target, serial=f"s-{image}", ceph=CEPH)


def test_capacity_and_hostname_come_from_the_node(make_host: HostFactory) -> None:
    h = make_host("h1", cpus=6, memory_mib=12288).observe()
    assert h.reachable
    assert (h.cpus, h.memory_mib) == (6, 12288)
    assert h.hostname
    assert h.domains == ()


def test_capacity_override_from_the_host_resource(make_host: HostFactory) -> None:
    h = make_host("h1", cpus=6, memory_mib=12288, cpu_capacity=3, ram_capacity_mib=2048).observe()
    assert (h.cpus, h.memory_mib) == (3, 2048)


def test_defined_domain_carries_the_mark_and_rbd_root(make_host: HostFactory) -> None:
    hv = make_host()
    hv.define(spec("vm1", vmid=7, spec_hash="abc", vcpus=3, memory_mib=768))
    d = hv.observe().domain("vm1")
    assert d is not None
    assert d.mark == OwnerMark(name="vm1", vmid=7, spec_hash="abc", installation=INSTALLATION.name)
    assert d.state == DomainState.SHUTOFF
    assert (d.vcpus, d.memory_mib) == (3, 768)
    assert [(x.target, x.rbd_image) for x in d.disks] == [("vda", "rbd/vm-vm1-root")]


def test_foreign_domains_are_reported_and_never_modified(make_host: HostFactory) -> None:
    hv = make_host(foreign=(("db", 4, 4096, True), ("old", 1, 1024, False)))
    h = hv.observe()
    db, old = h.domain("db"), h.domain("old")
    assert db is not None
    assert old is not None
    assert db.mark is None
    assert old.mark is None
    assert (db.state, db.vcpus, db.memory_mib) == (DomainState.RUNNING, 4, 4096)
    assert old.state == DomainState.SHUTOFF
    conn = hv.libvirt_connection()
    before = {n: conn.lookupByName(n).XMLDesc(0) for n in ("db", "old")}
    for action in (
        lambda: hv.define(spec("db")),
        lambda: hv.start("old"),
        lambda: hv.shutdown("db"),
        lambda: hv.destroy("db"),
        lambda: hv.attach_disk("db", vol("v1")),
        lambda: hv.detach_disk("db", "rbd/db-disk"),
        lambda: hv.resize_disk("db", "rbd/db-disk", 1 << 30),
    ):
        with pytest.raises(Conflict):
            action()
    after = {n: conn.lookupByName(n).XMLDesc(0) for n in ("db", "old")}
    assert after == before
    assert conn.lookupByName("db").isActive()
    assert not conn.lookupByName("old").isActive()


def test_define_is_idempotent_and_redefine_keeps_uuid_and_volumes(make_host: HostFactory) -> None:
    hv = make_host()
    hv.define(spec("vm1", spec_hash="a"))
    hv.define(spec("vm1", spec_hash="a"))
    assert hv.rpc_stats().get("defineXML") == 1
    hv.attach_disk("vm1", vol("v1"))
    uuid = hv.observe().domain("vm1").uuid  # type: ignore[union-attr]
    hv.define(spec("vm1", spec_hash="b", vcpus=4))
    d = hv.observe().domain("vm1")
    assert d is not None
    assert d.mark is not None
    assert (d.uuid, d.mark.spec_hash, d.vcpus) == (uuid, "b", 4)
    assert [x.rbd_image for x in d.disks] == ["rbd/vm-vm1-root", "rbd/v1"]


def test_start_shutdown_destroy_are_idempotent(make_host: HostFactory) -> None:
    hv = make_host()
    hv.define(spec("vm1"))
    hv.start("vm1")
    hv.start("vm1")
    assert hv.observe().domain("vm1").state == DomainState.RUNNING  # type: ignore[union-attr]
    hv.shutdown("vm1")
    hv.shutdown("vm1")
    assert hv.observe().domain("vm1").state == DomainState.SHUTOFF  # type: ignore[union-attr]
    hv.start("vm1")
    hv.destroy("vm1")
    assert hv.observe().domain("vm1") is None
    with pytest.raises(NotFound):
        hv.destroy("vm1")
    with pytest.raises(NotFound):
        hv.start("vm1")


def test_attach_detach_are_idempotent_on_the_test_seam(make_host: HostFactory) -> None:
    hv = make_host()
    hv.define(spec("vm1"))
    hv.start("vm1")
    hv.attach_disk("vm1", vol("v1"))
    hv.attach_disk("vm1", vol("v1"))
    d = hv.observe().domain("vm1")
    assert d is not None
    assert [(x.target, x.rbd_image, x.serial) for x in d.disks] == [
        ("vda", "rbd/vm-vm1-root", None),
        ("vdb", "rbd/v1", "s-v1"),
    ]
    with pytest.raises(Conflict):  # vdb is taken by another image
        hv.attach_disk("vm1", vol("v2", "vdb"))
    hv.detach_disk("vm1", "rbd/v1")
    hv.detach_disk("vm1", "rbd/v1")
    d = hv.observe().domain("vm1")
    assert d is not None
    assert [x.rbd_image for x in d.disks] == ["rbd/vm-vm1-root"]
    assert d.state == DomainState.RUNNING


def test_define_conflicts_with_a_foreign_domain_of_the_same_uuid(make_host: HostFactory) -> None:
    hv = make_host()
    hv.define(spec("vm1", vmid=3))
    conn = hv.libvirt_connection()
    dom = conn.lookupByName("vm1")
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, _ns(), 0)
    with pytest.raises(Conflict):
        hv.define(spec("vm1", vmid=3, spec_hash="new"))
    assert hv.observe().domain("vm1").mark is None  # type: ignore[union-attr]


def _ns() -> str:
    from reconciler.identity import XMLNS

    return XMLNS


def test_nic_hotplug_on_the_test_driver_and_steady_state_cost(make_host) -> None:  # type: ignore[no-untyped-def]
    """Interface attach/detach (emulated by redefinition on test:///), observed by MAC; the
    capabilities are read once per connection, so a steady pass stays one RPC."""
    from reconciler.payload import NicKind, NicSpec

    hv = make_host("h1")
    user = NicSpec("52:54:00:00:00:08", NicKind.USER)
    lan = NicSpec("52:54:00:00:00:09", NicKind.NETWORK, "lan")
    hv.define(spec("vm1", nics=(user,)))
    hv.start("vm1")
    first = hv.observe()
    assert [n.mac for n in first.domains[0].nics] == [user.mac]
    assert first.arches
    hv.attach_nic("vm1", lan)
    hv.attach_nic("vm1", lan)  # idempotent
    dom = hv.observe().domains[0]
    assert [(n.mac, n.kind, n.source) for n in dom.nics] == [
        (user.mac, "user", None),
        (lan.mac, "network", "lan"),
    ]
    hv.detach_nic("vm1", user.mac)
    assert [n.mac for n in hv.observe().domains[0].nics] == [lan.mac]
    before = hv.rpc_stats()
    hv.observe()
    after = hv.rpc_stats()
    spent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert spent == {"getAllDomainStats": 1}
