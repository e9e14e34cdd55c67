"""Domain XML for kvm and qemu hosts, NICs, console and VNC: valid by libvirt's own schema.

`virt-xml-validate` (libvirt-clients) checks the rendered XML against libvirt's RelaxNG
schema, the same one libvirtd applies with VALIDATE; the round trip checks that what volctl
renders is what it reads back when it observes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.backends import capabilities, domxml
from reconciler.payload import DiskSpec, NicKind, NicSpec, VirtType

from .conftest import CEPH, spec

VALIDATE = shutil.which("virt-xml-validate")

NICS = (
    NicSpec("52:54:00:00:00:38", NicKind.NETWORK, "default"),
    NicSpec("52:54:00:00:00:39", NicKind.BRIDGE, "br0"),
    NicSpec("52:54:00:00:00:3a", NicKind.USER),
)


def _validate(tmp_path: Path, xml: str, name: str) -> None:
    assert VALIDATE is not None, "virt-xml-validate missing: install libvirt-clients"
    path = tmp_path / f"{name}.xml"
    path.write_text(xml)
    out = subprocess.run(
        [VALIDATE, str(path), "domain"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("virt_type", [VirtType.KVM, VirtType.QEMU])
@pytest.mark.parametrize("vnc", [False, True])
def test_domain_xml_is_valid_for_libvirt(tmp_path: Path, virt_type: VirtType, vnc: bool) -> None:
    disk = domxml.render_disk(DiskSpec("rbd/vol-a", "vdb", "vol-3", CEPH))
    s = spec("web-1", vmid=7, virt_type=virt_type, nics=NICS, vnc=vnc)
    xml = domxml.render_domain(s, extra_disks=(disk,))
    _validate(tmp_path, xml, f"{virt_type}-{vnc}")
    assert xml.startswith(f'<domain type="{virt_type.value}">')
    assert ("<cpu mode='host-model'/>" in xml) == (virt_type == VirtType.KVM)
    assert ("<graphics type='vnc'" in xml) == vnc
    parsed = domxml.parse_domain(xml, xml)
    assert parsed.virt_type == virt_type.value
    assert [(n.mac, n.kind, n.source, n.model) for n in parsed.nics] == [
        ("52:54:00:00:00:38", "network", "default", "virtio"),
        ("52:54:00:00:00:39", "bridge", "br0", "virtio"),
        ("52:54:00:00:00:3a", "user", None, "virtio"),
    ]


def test_console_is_a_logged_pty(tmp_path: Path) -> None:
    xml = domxml.render_domain(spec(console_log="/var/log/libvirt/qemu/a+console.log"))
    _validate(tmp_path, xml, "console")
    assert "<serial type='pty'><log file=\"/var/log/libvirt/qemu/a+console.log\"" in xml
    assert "<console type='pty'>" in xml


def test_nic_hotplug_xml_round_trip() -> None:
    cfg = domxml.render_domain(spec(nics=NICS[:1]))
    nic = domxml.render_nic(NICS[2])
    live = domxml.with_nic(cfg, nic)
    assert domxml.find_nic(live, "52:54:00:00:00:3A") is not None  # MACs compare lower-case
    p = domxml.parse_domain(live, cfg)  # unplug requested: in the live XML only
    assert [(n.mac, n.persistent) for n in p.nics] == [
        ("52:54:00:00:00:38", True),
        ("52:54:00:00:00:3a", False),
    ]
    assert domxml.parse_domain(domxml.without_nic(live, "52:54:00:00:00:3a")).nics == p.nics[:1]


def test_live_vnc_address_is_read_from_the_live_xml() -> None:
    cfg = domxml.render_domain(spec(vnc=True))
    live = cfg.replace(
        "<graphics type='vnc' port='-1' autoport='yes'/>",
        "<graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'/>",
    )
    assert domxml.parse_domain(live, cfg).vnc == "127.0.0.1:5901"
    assert domxml.parse_domain(cfg).vnc is None  # no live display when not running


KVM_AND_TCG = "<domain type='qemu'/><domain type='kvm'/>"
CAPS = f"""<capabilities><host><cpu><arch>x86_64</arch></cpu></host>
<guest><os_type>hvm</os_type><arch name='i686'>{KVM_AND_TCG}</arch></guest>
<guest><os_type>hvm</os_type><arch name='x86_64'>{KVM_AND_TCG}</arch></guest>
<guest><os_type>hvm</os_type><arch name='aarch64'><domain type='qemu'/></arch></guest>
<guest><os_type>xen</os_type><arch name='x86_64'><domain type='xen'/></arch></guest>
</capabilities>"""


def test_capabilities_give_arches_and_virt_types() -> None:
    guests = capabilities.parse_guests(CAPS)
    assert guests == {
        "aarch64": ("qemu",),
        "i686": ("kvm", "qemu"),
        "x86_64": ("kvm", "qemu"),
    }
    assert capabilities.parse_guests("not xml") == {}


def test_the_test_driver_reports_its_node_arch(make_host) -> None:  # type: ignore[no-untyped-def]
    obs = make_host("h1").observe()
    assert obs.reachable
    assert "x86_64" in obs.arches  # the node file's CPU model, beside the driver's i686
    assert obs.offers("x86_64", "test")
    assert not obs.offers("x86_64", "kvm")


def test_aligned_gives_the_missing_half_the_target_of_the_present_one() -> None:
    """R1 defect 6: an image only the persistent definition holds (at vdd) is plugged live
    at vdd, not at the planner's target; a target taken in the other definition, a disk in
    both or in neither, and another bus's target leave the planner's choice alone."""
    from reconciler.backends.libvirt_devices import aligned

    def disk(image: str, target: str) -> DiskSpec:
        return DiskSpec(rbd_image=f"rbd/{image}", target=target, serial=image, ceph=CEPH)

    def dom(*disks: tuple[str, str]) -> str:
        xml = "<domain><name>d</name><uuid>u</uuid><devices>"
        for image, target in disks:
            xml += domxml.render_disk(disk(image, target))
        return xml + "</devices></domain>"

    cfg = dom(("a", "vdd"), ("c", "vde"))
    live = dom(("c", "vdb"))
    assert aligned(disk("a", "vdf"), cfg, live).target == "vdd"  # live half joins vdd
    assert aligned(disk("c", "vdf"), cfg, live).target == "vdf"  # in both: nothing to add
    assert aligned(disk("n", "vdf"), cfg, live).target == "vdf"  # new: the planner's target
    assert aligned(disk("a", "sdb"), cfg, live).target == "sdb"  # another bus
    taken = dom(("c", "vdd"))
    assert aligned(disk("a", "vdf"), cfg, taken).target == "vdf"  # vdd held live by c
    assert aligned(disk("x", "vdf"), dom(("x", "vdc")), dom()).target == "vdc"  # only persistent
