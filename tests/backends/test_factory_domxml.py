"""Pure parts of the backends and their wiring: monitor parsing (controller.factory), domain
XML render/parse round trip."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reconciler.backends import domxml
from reconciler.config import CephConfig
from reconciler.controller.factory import (
    ceph_access,
    hypervisor_for,
    monitors_from_conf,
    parse_mon_host,
)
from reconciler.identity import XMLNS
from reconciler.model import Host, Meta
from reconciler.observe.types import OwnerMark
from reconciler.payload import DiskSpec

from .conftest import CEPH, INSTALLATION, spec


def test_mon_host_prefers_v1_per_monitor() -> None:
    assert parse_mon_host("[v2:127.0.0.1:3300,v1:127.0.0.1:6789]") == (("127.0.0.1", 6789),)
    assert parse_mon_host("[v2:10.0.0.1:3300] [v2:10.0.0.2:3300,v1:10.0.0.2:6789]") == (
        ("10.0.0.1", 3300),
        ("10.0.0.2", 6789),
    )
    assert parse_mon_host("a.example:6790, 10.0.0.3") == (("a.example", 6790), ("10.0.0.3", 6789))


def test_monitors_from_a_conf_file(tmp_path: Path) -> None:
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nfsid = x\nmon host = [v2:127.0.0.1:3339,v1:127.0.0.1:6839]\n")
    assert monitors_from_conf(str(conf)) == (("127.0.0.1", 6839),)
    access = ceph_access(CephConfig(conf=str(conf), pool="p", user="u", secret_uuid="s"))
    assert (access.monitors, access.pool, access.auth_user, access.secret_uuid) == (
        (("127.0.0.1", 6839),),
        "p",
        "u",
        "s",
    )
    assert monitors_from_conf(str(tmp_path / "missing.conf")) == ()


def test_hypervisor_for_applies_the_host_overrides() -> None:
    host = Host(meta=Meta(name="h9"), uri="test:///default", pmid=1, cpu_capacity=3)
    hv = hypervisor_for(host, installation=lambda: INSTALLATION)
    try:
        assert hv.name == "h9"
        assert hv.observe().cpus == 3
    finally:
        hv.close()


def test_render_parse_round_trip() -> None:
    s = spec("web-1", vmid=12, spec_hash="f00", vcpus=3, memory_mib=1536)
    disk = domxml.render_disk(
        DiskSpec(rbd_image="rbd/vol-data", target="vdb", serial="vol-7", ceph=CEPH)
    )
    xml = domxml.render_domain(s, extra_disks=(disk,))
    assert "<cpu" not in xml
    assert "<graphics" not in xml
    assert f'xmlns:volctl="{XMLNS}"' in xml
    p = domxml.parse_domain(xml)
    assert p.name == "web-1"
    assert p.uuid == domxml.domain_uuid(12, "web-1")
    assert (p.vcpus, p.memory_mib) == (3, 1536)
    assert p.mark == OwnerMark(name="web-1", vmid=12, spec_hash="f00")
    assert [(d.target, d.rbd_image, d.serial) for d in p.disks] == [
        ("vda", "rbd/vm-web-1-root", None),
        ("vdb", "rbd/vol-data", "vol-7"),
    ]
    assert domxml.volume_disks(xml) == (domxml.find_disk(xml, "rbd/vol-data"),)
    assert domxml.parse_domain(domxml.without_disk(xml, "rbd/vol-data")).disks[1:] == ()


def test_persistence_comes_from_the_inactive_xml() -> None:
    disk = domxml.render_disk(DiskSpec(rbd_image="rbd/v", target="vdb", serial="s", ceph=CEPH))
    cfg = domxml.render_domain(spec())
    live = domxml.with_disk(cfg, disk)  # detach requested: gone from config, still live
    p = domxml.parse_domain(live, cfg)
    assert [(d.rbd_image, d.persistent) for d in p.disks] == [
        ("rbd/vm-vm1-root", True),
        ("rbd/v", False),
    ]


def test_foreign_or_broken_marks_are_no_marks() -> None:
    xml = domxml.render_domain(spec())
    no_meta = xml.replace(xml[xml.index("<metadata>") : xml.index("</metadata>") + 11], "")
    assert domxml.parse_domain(no_meta).mark is None
    assert domxml.parse_domain(xml.replace('vmid="1"', 'vmid="one"')).mark is None
    other_ns = xml.replace(XMLNS, "https://example.com/other")
    assert domxml.parse_domain(other_ns).mark is None
    assert domxml.parse_mark("<vm name='a' vmid='2' spec-hash='h'/>") == OwnerMark("a", 2, "h")
    assert domxml.parse_mark("<vm name='a'/>") is None


def test_memory_units() -> None:
    xml = domxml.render_domain(spec()).replace(
        "<memory unit='MiB'>512</memory>", "<memory unit='GiB'>2</memory>"
    )
    assert domxml.parse_domain(xml).memory_mib == 2048


def test_the_leader_epoch_rides_in_the_owner_mark() -> None:
    """An HA leader's epoch is written into the mark of what it defines, and read back; outside
    HA the mark has none (and old marks without it still parse)."""
    with_epoch = domxml.render_domain(replace(spec(), epoch=7))
    assert domxml.parse_domain(with_epoch).mark == OwnerMark("vm1", 1, spec().spec_hash, epoch=7)
    plain = domxml.parse_domain(domxml.render_domain(spec())).mark
    assert plain is not None
    assert plain.epoch is None
    assert domxml.parse_mark("<vm name='a' vmid='2' spec-hash='h' epoch='3'/>") == OwnerMark(
        "a", 2, "h", epoch=3
    )
