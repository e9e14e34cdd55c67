"""`bus: scsi` volumes: the spec field reaches the rendered `<disk>` and the planner's target.

A scsi disk unplugs without the guest's help (lab notes: ~60 ms) but needs a SCSI
controller: every rendered domain carries a virtio-scsi one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reconciler.backends import domxml
from reconciler.payload import CephAccess, DiskBus, DiskSpec, DomainSpec

CEPH = CephAccess(monitors=(("127.0.0.1", 6789),), auth_user="admin", secret_uuid="u")


def test_a_scsi_disk_renders_on_the_scsi_bus_and_every_domain_has_the_controller() -> None:
    xml = domxml.render_disk(DiskSpec("rbd/vol-a", "sdb", "vol-1", CEPH, bus=DiskBus.SCSI))
    target = ET.fromstring(xml).find("target")
    assert target is not None
    assert (target.get("dev"), target.get("bus")) == ("sdb", "scsi")
    virtio = ET.fromstring(domxml.render_disk(DiskSpec("rbd/vol-a", "vdb", "vol-1", CEPH)))
    assert virtio.find("target").get("bus") == "virtio"  # type: ignore[union-attr]
    dom = ET.fromstring(
        domxml.render_domain(DomainSpec("a", 1, "h", 1, 128, "rbd/vm-a-root", "/c/a", CEPH))
    )
    ctl = dom.findall("./devices/controller[@type='scsi']")
    assert [c.get("model") for c in ctl] == ["virtio-scsi"]


def test_targets_per_bus() -> None:
    assert DiskBus.VIRTIO.targets(3) == ("vdb", "vdc", "vdd")
    assert DiskBus.SCSI.targets(2) == ("sdb", "sdc")
