"""A small desired state the campaigns change at will, rendered as volctl YAML and checked
against the world.

R3 and the soak both need to know, at any moment, exactly what they asked volctl for, so
that convergence can be judged by looking at libvirt and RBD rather than at volctl's own
status.  `Workload` is that record (VMs with their `running` flag, volumes with their size,
attachments), `documents()` renders it for `volctl apply`, and `check_world()` compares it
with what every lab host and the pool actually hold: each VM exactly once, running as asked,
its root clone at vda and exactly its attached volumes in the live (or, shut off, the
persistent) XML; every volume at its size; no domain or image of the prefix that nothing
wants (deleted VMs and their roots, volumes with reclaimPolicy Delete).
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt
import rbd
import yaml

from bench.common.lab import Lab
from bench.common.world import ceph
from reconciler.identity import root_disk_name, volume_image_name
from reconciler.lab.inventory import HOST_VIRT_TYPE

GIB = 1024**3


@dataclass
class VMSpec:
    name: str
    running: bool = True
    host: str | None = None  # pinned, or placed by volctl


@dataclass
class Workload:
    lab: Lab
    prefix: str
    ram_mib: int = 128
    disk_gib: int = 1
    vms: dict[str, VMSpec] = field(default_factory=dict)
    volumes: dict[str, int] = field(default_factory=dict)  # name -> size GiB
    attachments: dict[str, str] = field(default_factory=dict)  # volume -> vm
    serial: int = 0

    @property
    def type_name(self) -> str:
        return f"{self.prefix}-type"

    @property
    def image_name(self) -> str:
        return f"{self.prefix}-base"

    def new_name(self, kind: str) -> str:
        self.serial += 1
        return f"{self.prefix}-{kind}{self.serial:03d}"

    def running_count(self) -> int:
        return sum(1 for v in self.vms.values() if v.running)

    # -- rendering -------------------------------------------------------------------------

    def infra_documents(self) -> list[dict[str, Any]]:
        info = self.lab.info
        docs = [
            _doc(
                "Host",
                h.name,
                {
                    "uri": h.uri,
                    "pmid": 800 + n,
                    "virtType": HOST_VIRT_TYPE,
                    "capacity": {"cpu": 256, "ramMiB": 1024 * 1024},
                },
            )
            for n, h in enumerate(info.hosts, start=1)
        ]
        docs.append(_doc("Image", self.image_name, {"id": 800, "source": {"rbd": info.base_image}}))
        docs.append(
            _doc(
                "InstanceType",
                self.type_name,
                {"tid": 800, "cpu": 1, "ram": self.ram_mib, "disk": self.disk_gib},
            )
        )
        return docs

    def documents(self) -> list[dict[str, Any]]:
        docs = self.infra_documents()
        for vm in self.vms.values():
            spec: dict[str, Any] = {
                "instanceType": self.type_name,
                "image": self.image_name,
                "running": vm.running,
            }
            if vm.host:
                spec["host"] = vm.host
            docs.append(_doc("VirtualMachine", vm.name, spec))
        for name, size in self.volumes.items():
            docs.append(_doc("Volume", name, {"size": size, "reclaimPolicy": "Delete"}))
        for vol, vm_name in self.attachments.items():
            docs.append(_doc("VolumeAttachment", f"{vol}-at", {"volume": vol, "vm": vm_name}))
        return docs

    def write(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump_all(self.documents(), sort_keys=False))
        return path

    # -- the world -------------------------------------------------------------------------

    def check_world(self) -> list[str]:
        """Every way the world differs from this workload (empty: converged)."""
        problems: list[str] = []
        pool = self.lab.info.pool
        seen: dict[str, list[tuple[str, bool, dict[str, str]]]] = {}
        for h in self.lab.info.hosts:
            for name, active, disks in _domains(h.uri, self.prefix + "-"):
                seen.setdefault(name, []).append((h.name, active, disks))
        holders: dict[str, list[str]] = {}
        for name, places in seen.items():
            for _host, _active, disks in places:
                for image in disks.values():
                    holders.setdefault(image, []).append(name)
        for vm in self.vms.values():
            places = seen.get(vm.name, [])
            if len(places) != 1:
                problems.append(f"{vm.name}: {len(places)} domains {[p[0] for p in places]}")
                continue
            host, active, disks = places[0]
            if vm.host and host != vm.host:
                problems.append(f"{vm.name}: on {host}, pinned to {vm.host}")
            if active != vm.running:
                problems.append(f"{vm.name}: active={active}, running={vm.running}")
            root = f"{pool}/{root_disk_name(vm.name)}"
            if disks.get("vda") != root:
                problems.append(f"{vm.name}: vda is {disks.get('vda')}, expected {root}")
            want = {
                f"{pool}/{volume_image_name(v)}"
                for v, m in self.attachments.items()
                if m == vm.name
            }
            have = {img for tgt, img in disks.items() if tgt != "vda"}
            if have != want:
                problems.append(f"{vm.name}: volumes {sorted(have)}, expected {sorted(want)}")
        extra = sorted(set(seen) - set(self.vms))
        if extra:
            problems.append(f"domains nothing wants: {extra}")
        for image, names in holders.items():
            if len(names) > 1:
                problems.append(f"{image} attached to {len(names)} domains: {names}")
        problems += self._check_images()
        return problems

    def _check_images(self) -> list[str]:
        problems: list[str] = []
        want_vols = {volume_image_name(v): s for v, s in self.volumes.items()}
        want_roots = {root_disk_name(v) for v in self.vms}
        ours = (f"vm-{self.prefix}-", f"vol-{self.prefix}-")
        with ceph(self.lab) as io:
            names = [n for n in rbd.RBD().list(io) if n.startswith(ours)]
            for name, size in want_vols.items():
                if name not in names:
                    problems.append(f"volume image {name} missing")
                    continue
                with rbd.Image(io, name, read_only=True) as im:
                    if im.size() != size * GIB:
                        problems.append(f"{name}: {im.size()} bytes, expected {size} GiB")
            for name in want_roots - set(names):
                problems.append(f"root image {name} missing")
        extra = sorted(set(names) - set(want_vols) - want_roots)
        if extra:
            problems.append(f"images nothing wants: {extra}")
        return problems


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "volctl.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def _domains(uri: str, prefix: str) -> list[tuple[str, bool, dict[str, str]]]:
    """(name, active, {target: pool/image}) of every domain named PREFIX* on one host; the
    disks come from the live XML of a running domain and the persistent one otherwise."""
    conn = libvirt.open(uri)
    out = []
    try:
        for dom in conn.listAllDomains(0):
            name = dom.name()
            if not name.startswith(prefix):
                continue
            with contextlib.suppress(libvirt.libvirtError):
                root = ET.fromstring(dom.XMLDesc(0))
                disks = {}
                for d in root.findall("./devices/disk"):
                    src, tgt = d.find("source"), d.find("target")
                    if src is not None and tgt is not None and src.get("protocol") == "rbd":
                        disks[tgt.get("dev", "")] = src.get("name", "")
                out.append((name, bool(dom.isActive()), disks))
    finally:
        conn.close()
    return out


def domain_ids(lab: Lab, prefix: str) -> dict[str, tuple[str, str, int]]:
    """name -> (host, uuid, qemu domain id or -1): a destroyed and restarted VM changes its
    id, an undefined and redefined one its uuid."""
    out: dict[str, tuple[str, str, int]] = {}
    for h in lab.info.hosts:
        conn = libvirt.open(h.uri)
        try:
            for dom in conn.listAllDomains(0):
                if dom.name().startswith(prefix):
                    out[dom.name()] = (h.name, dom.UUIDString(), dom.ID() if dom.isActive() else -1)
        finally:
            conn.close()
    return out
