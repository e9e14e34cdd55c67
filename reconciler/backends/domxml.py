"""Render and parse libvirt domain and disk XML.  Pure functions, no libvirt import.

Why a module of its own: the XML is the contract with libvirt *and* the place where
ownership lives.  The volctl mark (`<metadata><volctl:vm .../></metadata>`, namespace
`identity.XMLNS`) is part of the XML given to `defineXML`, so a domain is never defined
without its mark.  Keeping render and parse side by side makes the round trip testable
without a hypervisor.

Parsing never raises on a strange domain: a foreign domain may have any XML, and a mark
that does not parse is treated as no mark (foreign, never touched).  A mark that parses
still names the installation that wrote it; `owned_mark` is where a backend keeps only the
marks of its own installation (another installation's domains are foreign).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape, quoteattr

from reconciler.identity import XMLNS, XMLNS_PREFIX, Installation
from reconciler.observe.types import ObservedDisk, ObservedNic, OwnerMark
from reconciler.payload import CephAccess, DiskSpec, DomainSpec, NicKind, NicSpec, VirtType

ET.register_namespace(XMLNS_PREFIX, XMLNS)

# UUIDs of managed domains are derived from (vmid, name): a retried define after a crash
# produces the same UUID, so it can never create a second domain.
_UUID_NAMESPACE = uuid.UUID("6b1c0f5e-9d3a-5c1e-9a43-7d2f3c1b9e10")

_UNIT_TO_KIB = {
    "b": 1 / 1024,
    "bytes": 1 / 1024,
    "k": 1,
    "kib": 1,
    "kb": 1000 / 1024,
    "m": 1024,
    "mib": 1024,
    "mb": 1000**2 / 1024,
    "g": 1024**2,
    "gib": 1024**2,
    "gb": 1000**3 / 1024,
    "t": 1024**3,
    "tib": 1024**3,
    "tb": 1000**4 / 1024,
}


def domain_uuid(vmid: int, name: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{vmid}/{name}"))


@dataclass(frozen=True)
class ParsedDomain:
    """What volctl reads from one domain XML."""

    name: str
    uuid: str
    vcpus: int
    memory_mib: int
    mark: OwnerMark | None
    disks: tuple[ObservedDisk, ...]
    nics: tuple[ObservedNic, ...] = ()
    virt_type: str | None = None
    vnc: str | None = None  # "listen:port" of a live VNC display
    console_log: str | None = None  # <serial><log file>
    # every disk target of the persistent definition, including disks it holds that the
    # live domain does not (a half-done attach or detach): taken, for the next attach
    config_targets: frozenset[str] = frozenset()


def _rbd_source(ceph: CephAccess, image: str) -> str:
    hosts = "".join(
        f"<host name={quoteattr(h)} port={quoteattr(str(p))}/>" for h, p in ceph.monitors
    )
    return f"<source protocol='rbd' name={quoteattr(image)}>{hosts}</source>"


def _auth(ceph: CephAccess) -> str:
    if not ceph.secret_uuid:
        return ""  # cephx disabled (auth none): no secret to reference
    return (
        f"<auth username={quoteattr(ceph.auth_user)}>"
        f"<secret type='ceph' uuid={quoteattr(ceph.secret_uuid)}/></auth>"
    )


def render_disk(disk: DiskSpec) -> str:
    """`<disk>` for an RBD volume on its bus (virtio-blk, or scsi on the domain's virtio-scsi
    controller), with the serial the guest sees."""
    return (
        "<disk type='network' device='disk'>"
        "<driver name='qemu' type='raw' cache='none'/>"
        f"{_auth(disk.ceph)}{_rbd_source(disk.ceph, disk.rbd_image)}"
        f"<target dev={quoteattr(disk.target)} bus={quoteattr(disk.bus.value)}/>"
        f"<serial>{escape(disk.serial)}</serial>"
        "</disk>"
    )


def render_nic(nic: NicSpec) -> str:
    """`<interface>` for one virtio NIC with its deterministic MAC."""
    match nic.kind:
        case NicKind.NETWORK:
            source = f"<source network={quoteattr(nic.source or '')}/>"
        case NicKind.BRIDGE:
            source = f"<source bridge={quoteattr(nic.source or '')}/>"
        case NicKind.USER:
            source = ""
    return (
        f"<interface type={quoteattr(nic.kind.value)}>"
        f"<mac address={quoteattr(nic.mac)}/>{source}<model type='virtio'/>"
        "</interface>"
    )


def render_mark(
    name: str,
    vmid: int,
    spec_hash: str,
    epoch: int | None = None,
    *,
    installation: str | None = None,
) -> str:
    """The owner mark.  The backends always name their installation; None writes the mark
    of volctl before installations were named (tests and synthetic benchmark fleets)."""
    leader = "" if epoch is None else f" epoch={quoteattr(str(epoch))}"
    inst = "" if installation is None else f" installation={quoteattr(installation)}"
    return (
        f"<{XMLNS_PREFIX}:vm xmlns:{XMLNS_PREFIX}={quoteattr(XMLNS)} name={quoteattr(name)} "
        f"vmid={quoteattr(str(vmid))} spec-hash={quoteattr(spec_hash)}{leader}{inst}/>"
    )


def render_domain(
    spec: DomainSpec,
    *,
    installation: str | None = None,
    domain_type: str | None = None,
    uuid_str: str | None = None,
    extra_disks: tuple[str, ...] = (),
) -> str:
    """The full domain XML for a DomainSpec, marked as `installation`'s (`render_mark`).

    The domain type is `spec.virt_type`: "kvm" gets `<cpu mode='host-model'/>` (the host's
    CPU model and features, still migratable between like hosts), "qemu" (TCG) gets no
    `<cpu>` (qemu64).  `domain_type` overrides it ("test" for libvirt's test driver).
    `extra_disks` are `<disk>` elements kept from an existing definition (attached volumes
    survive a redefine).  The serial console is a pty (so `virDomainOpenConsole` can attach
    to it) that also logs to `spec.console_log`.
    """
    dtype = domain_type or spec.virt_type.value
    mark = render_mark(spec.name, spec.vmid, spec.spec_hash, spec.epoch, installation=installation)
    root_disk = (
        "<disk type='network' device='disk'>"
        "<driver name='qemu' type='raw' cache='none'/>"
        f"{_auth(spec.ceph)}{_rbd_source(spec.ceph, spec.root_image)}"
        "<target dev='vda' bus='virtio'/>"
        "</disk>"
    )
    cpu = "<cpu mode='host-model'/>" if dtype == VirtType.KVM.value else ""
    log = quoteattr(spec.console_log)
    graphics = (
        "<graphics type='vnc' port='-1' autoport='yes'/><video><model type='vga'/></video>"
        if spec.vnc
        else "<video><model type='none'/></video>"
    )
    return (
        f"<domain type={quoteattr(dtype)}>"
        f"<name>{escape(spec.name)}</name>"
        f"<uuid>{uuid_str or domain_uuid(spec.vmid, spec.name)}</uuid>"
        f"<metadata>{mark}</metadata>"
        f"<memory unit='MiB'>{int(spec.memory_mib)}</memory>"
        f"<currentMemory unit='MiB'>{int(spec.memory_mib)}</currentMemory>"
        f"<vcpu placement='static'>{int(spec.vcpus)}</vcpu>"
        f"<os><type arch={quoteattr(spec.arch)}>hvm</type><boot dev='hd'/></os>"
        "<features><acpi/><apic/></features>"
        f"{cpu}"
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>"
        "<on_crash>destroy</on_crash>"
        "<devices>"
        f"{root_disk}{''.join(extra_disks)}"
        # volumes with `bus: scsi` plug in here (a disk on it unplugs without the guest)
        "<controller type='scsi' index='0' model='virtio-scsi'/>"
        f"{''.join(render_nic(n) for n in spec.nics)}"
        f"<serial type='pty'><log file={log} append='on'/><target port='0'/></serial>"
        "<console type='pty'><target type='serial' port='0'/></console>"
        f"{graphics}"
        "<memballoon model='none'/>"
        "</devices>"
        "</domain>"
    )


def _parse(xml: str) -> ET.Element:
    # The XML comes from libvirt (a trusted local daemon), not from users.
    return ET.fromstring(xml)  # noqa: S314


def _kib(el: ET.Element | None) -> int:
    if el is None or not (el.text or "").strip():
        return 0
    factor = _UNIT_TO_KIB.get((el.get("unit") or "KiB").lower(), 1)
    return int(int(el.text.strip()) * factor)  # type: ignore[union-attr]


def _mark(root: ET.Element) -> OwnerMark | None:
    el = root.find(f"metadata/{{{XMLNS}}}vm")
    if el is None:
        return None
    try:
        return _mark_of(el)
    except (KeyError, ValueError):
        return None


def _mark_of(el: ET.Element) -> OwnerMark:
    epoch = el.get("epoch")
    return OwnerMark(
        name=el.attrib["name"],
        vmid=int(el.attrib["vmid"]),
        spec_hash=el.attrib["spec-hash"],
        epoch=None if epoch is None else int(epoch),
        installation=el.get("installation"),
    )


def owned_mark(
    mark: OwnerMark | None, disks: tuple[ObservedDisk, ...], installation: Installation
) -> OwnerMark | None:
    """`mark` if `installation` owns the domain, else None (foreign: never changed)."""
    if mark is None or not installation.owns(mark.installation, (d.rbd_image for d in disks)):
        return None
    return mark


def parse_mark(metadata_xml: str) -> OwnerMark | None:
    """Parse the element returned by virDomainGetMetadata(ELEMENT, XMLNS)."""
    try:
        return _mark_of(_parse(metadata_xml))
    except (ET.ParseError, KeyError, ValueError):
        return None


def _disks(root: ET.Element) -> list[tuple[str, str | None, str | None]]:
    out: list[tuple[str, str | None, str | None]] = []
    for disk in root.findall("devices/disk"):
        target = disk.find("target")
        if target is None or not target.get("dev"):
            continue
        source = disk.find("source")
        image = None
        if disk.get("type") == "network" and source is not None and source.get("protocol") == "rbd":
            image = source.get("name")
        serial_el = disk.find("serial")
        serial = serial_el.text.strip() if serial_el is not None and serial_el.text else None
        out.append((str(target.get("dev")), image, serial))
    return out


def _nics(root: ET.Element) -> list[ObservedNic]:
    out = []
    for iface in root.findall("devices/interface"):
        mac_el = iface.find("mac")
        mac = (mac_el.get("address") or "").lower() if mac_el is not None else ""
        if not mac:
            continue
        kind = iface.get("type") or ""
        source = iface.find("source")
        name = None
        if source is not None:
            name = source.get("network") or source.get("bridge") or source.get("dev")
        model_el = iface.find("model")
        model = model_el.get("type") if model_el is not None else None
        out.append(ObservedNic(mac=mac, kind=kind, source=name, model=model))
    return out


def _vnc(root: ET.Element) -> str | None:
    for gfx in root.findall("devices/graphics"):
        port = gfx.get("port")
        if gfx.get("type") == "vnc" and port and port != "-1":
            return f"{gfx.get('listen') or '127.0.0.1'}:{port}"
    return None


def _console_log(root: ET.Element) -> str | None:
    log = root.find("devices/serial/log")
    if log is None:  # a file-backed serial port (volctl before pty consoles) is its own log
        source = root.find("devices/serial[@type='file']/source")
        return None if source is None else source.get("path")
    return log.get("file")


def parse_domain(live_xml: str, inactive_xml: str | None = None) -> ParsedDomain:
    """Parse a domain's XML; `inactive_xml` decides which live disks and NICs are persistent.

    The domain type is read from `inactive_xml` when given: a changed type applies at the
    next cold start, so the persistent definition is what volctl compares.
    """
    root = _parse(live_xml)
    cfg_root = _parse(inactive_xml) if inactive_xml is not None else root
    persistent_images: set[str | None] | None = None
    persistent_targets: set[str] | None = None
    if inactive_xml is not None and inactive_xml != live_xml:
        cfg = _disks(_parse(inactive_xml))
        persistent_images = {img for _, img, _ in cfg}
        persistent_targets = {t for t, _, _ in cfg}
    live_disks = _disks(root)
    config_targets = frozenset(
        persistent_targets if persistent_targets is not None else (t for t, _, _ in live_disks)
    )
    disks = []
    for target, image, serial in live_disks:
        persistent = True
        if persistent_images is not None and persistent_targets is not None:
            persistent = image in persistent_images if image else target in persistent_targets
        disks.append(
            ObservedDisk(target=target, rbd_image=image, serial=serial, persistent=persistent)
        )
    nics = _nics(root)
    if inactive_xml is not None and inactive_xml != live_xml:
        cfg_macs = {n.mac for n in _nics(cfg_root)}
        nics = [n if n.mac in cfg_macs else replace(n, persistent=False) for n in nics]
    vcpu_el = root.find("vcpu")
    vcpus = 0
    if vcpu_el is not None:
        raw = vcpu_el.get("current") or (vcpu_el.text or "0")
        vcpus = int(raw.strip() or 0)
    return ParsedDomain(
        name=(root.findtext("name") or "").strip(),
        uuid=(root.findtext("uuid") or "").strip(),
        vcpus=vcpus,
        memory_mib=_kib(root.find("memory")) // 1024,
        mark=_mark(root),
        disks=tuple(disks),
        nics=tuple(nics),
        virt_type=cfg_root.get("type"),
        vnc=_vnc(root) if inactive_xml is not None else None,
        console_log=_console_log(cfg_root),
        config_targets=config_targets,
    )


def find_disk(xml: str, rbd_image: str) -> str | None:
    """The `<disk>` element (as XML text) whose RBD source is `rbd_image`, if any."""
    for disk in _parse(xml).findall("devices/disk"):
        source = disk.find("source")
        if source is not None and source.get("name") == rbd_image:
            return ET.tostring(disk, encoding="unicode")
    return None


def disk_target(disk_xml: str) -> str | None:
    target = _parse(disk_xml).find("target")
    return None if target is None else target.get("dev")


def volume_disks(xml: str) -> tuple[str, ...]:
    """Every `<disk>` except the root disk `vda`, as XML text (kept across a redefine)."""
    out = []
    for disk in _parse(xml).findall("devices/disk"):
        target = disk.find("target")
        if target is not None and target.get("dev") == "vda":
            continue
        out.append(ET.tostring(disk, encoding="unicode"))
    return tuple(out)


def with_disk(xml: str, disk_xml: str) -> str:
    """The domain XML with one more `<disk>` (test-driver attach emulation)."""
    root = _parse(xml)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    new = _parse(disk_xml)
    last_disk = max((i for i, el in enumerate(devices) if el.tag == "disk"), default=-1)
    devices.insert(last_disk + 1, new)
    return ET.tostring(root, encoding="unicode")


def without_disk(xml: str, rbd_image: str) -> str:
    """The domain XML without the disk backed by `rbd_image` (test-driver detach emulation)."""
    root = _parse(xml)
    devices = root.find("devices")
    if devices is not None:
        for disk in devices.findall("disk"):
            source = disk.find("source")
            if source is not None and source.get("name") == rbd_image:
                devices.remove(disk)
    return ET.tostring(root, encoding="unicode")


def disk_alias(disk_xml: str) -> str | None:
    """The device alias libvirt gave a live disk (`<alias name='virtio-disk1'/>`), if any."""
    alias = _parse(disk_xml).find("alias")
    return None if alias is None else alias.get("name")


def find_nic(xml: str, mac: str) -> str | None:
    """The `<interface>` element (as XML text) with MAC address `mac`, if any."""
    for iface in _parse(xml).findall("devices/interface"):
        mac_el = iface.find("mac")
        if mac_el is not None and (mac_el.get("address") or "").lower() == mac.lower():
            return ET.tostring(iface, encoding="unicode")
    return None


def with_nic(xml: str, nic_xml: str) -> str:
    """The domain XML with one more `<interface>` (test-driver hot-plug emulation)."""
    root = _parse(xml)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    new = _parse(nic_xml)
    last = max((i for i, el in enumerate(devices) if el.tag in ("disk", "interface")), default=-1)
    devices.insert(last + 1, new)
    return ET.tostring(root, encoding="unicode")


def without_nic(xml: str, mac: str) -> str:
    """The domain XML without the `<interface>` with MAC `mac` (test-driver emulation)."""
    root = _parse(xml)
    devices = root.find("devices")
    if devices is not None:
        for iface in devices.findall("interface"):
            mac_el = iface.find("mac")
            if mac_el is not None and (mac_el.get("address") or "").lower() == mac.lower():
                devices.remove(iface)
    return ET.tostring(root, encoding="unicode")
