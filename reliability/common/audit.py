"""What volctl owns in the world, read from libvirt and RBD directly, and judged against a spec.

A crash campaign is only worth its figures if the verdict does not come from the program under
test.  So this module reads every domain on every lab host and every image of the pool, keeps
those carrying volctl's ownership marks (`<volctl:vm>` in domain metadata, `volctl.*`
image-meta, and the reserved scratch names), and compares them with the desired fleet the
campaign wrote: duplicates (one VM defined twice, on two hosts or under one vmid), orphans
(something marked as ours that no spec wants, scratch debris older than its grace period),
what is missing, and volumes attached where they should not be.  Volume contents are checked
by streaming `rbd export` through sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import libvirt
import rados
import rbd

from bench.common.lab import Lab
from bench.common.world import ceph
from reconciler import identity

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


@dataclass(frozen=True)
class OurDomain:
    host: str
    name: str
    vmid: int
    active: bool
    rbd_disks: tuple[str, ...]  # "pool/image" of every rbd disk in the live XML


@dataclass(frozen=True)
class OurImage:
    name: str
    kind: str  # "root" | "volume" | "image" | "scratch"
    resource: str  # volctl resource name from image-meta ("" for unmarked scratch)
    reclaim: str
    size: int
    watchers: int
    age_s: float  # scratch images only (0 otherwise)


@dataclass
class World:
    domains: list[OurDomain] = field(default_factory=list)
    images: dict[str, OurImage] = field(default_factory=dict)


@dataclass(frozen=True)
class Desired:
    """The fleet as the campaign wrote it into the store."""

    pool: str
    vms: frozenset[str]
    volumes: Mapping[str, str]  # name -> reclaimPolicy
    attachments: Mapping[str, str]  # volume -> vm
    volume_bytes: int
    root_bytes: int


@dataclass
class Verdict:
    duplicates: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # desired but absent or wrong
    retained: int = 0  # Retain volumes no spec wants any more (kept on purpose)

    @property
    def converged(self) -> bool:
        return not (self.duplicates or self.orphans or self.missing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "duplicates": len(self.duplicates),
            "orphans": len(self.orphans),
            "missing": len(self.missing),
            "retained": self.retained,
            "problems": (self.duplicates + self.orphans + self.missing)[:12],
        }


def observe(lab: Lab, pool: str) -> World:
    world = World()
    for h in lab.info.hosts:
        conn = libvirt.open(h.uri)
        try:
            for dom in conn.listAllDomains(0):
                try:
                    xml = dom.XMLDesc(0)
                    active = bool(dom.isActive())
                except libvirt.libvirtError:
                    continue  # undefined between the listing and the read
                mark = _mark(xml)
                if mark is not None:
                    world.domains.append(
                        OurDomain(h.name, dom.name(), mark, active, _rbd_disks(xml))
                    )
        finally:
            conn.close()
    with pool_io(lab, pool) as io:
        for raw in rbd.RBD().list(io):
            name = str(raw)
            img = _image(io, name)
            if img is not None:
                world.images[name] = img
    return world


@contextlib.contextmanager
def pool_io(lab: Lab, pool: str) -> Iterator[rados.Ioctx]:
    """An ioctx on `pool`, every op bounded (bench's `world.ceph`)."""
    with ceph(lab, pool) as io:
        yield io


def judge(world: World, want: Desired, *, scratch_grace: float) -> Verdict:
    v = Verdict()
    where: dict[str, list[OurDomain]] = {}
    by_vmid: dict[int, set[str]] = {}
    for d in world.domains:
        where.setdefault(d.name, []).append(d)
        by_vmid.setdefault(d.vmid, set()).add(d.name)
    for name, doms in sorted(where.items()):
        if len(doms) > 1:
            v.duplicates.append(f"domain {name} on {sorted(d.host for d in doms)}")
        if name not in want.vms:
            v.orphans.append(f"domain {name} on {[d.host for d in doms]}: no spec wants it")
    v.duplicates += [
        f"vmid {i} carried by {sorted(names)}" for i, names in by_vmid.items() if len(names) > 1
    ]
    for vm in sorted(want.vms):
        doms = where.get(vm, [])
        if not doms:
            v.missing.append(f"vm {vm}: no domain")
        elif not all(d.active for d in doms):
            v.missing.append(f"vm {vm}: not running")
        root = world.images.get(identity.root_disk_name(vm))
        if root is None or root.kind != "root":
            v.missing.append(f"vm {vm}: root image missing or not ours")
    _judge_images(world, want, v, scratch_grace)
    _judge_attachments(world, want, v)
    return v


def _judge_images(world: World, want: Desired, v: Verdict, scratch_grace: float) -> None:
    for name, img in sorted(world.images.items()):
        if img.kind == "scratch":
            if img.age_s > scratch_grace:
                v.orphans.append(f"scratch {name}: {img.age_s:.0f} s old, past its grace")
        elif img.kind == "root" and img.resource not in want.vms:
            v.orphans.append(f"root image {name}: vm {img.resource} is not wanted")
        elif img.kind == "volume" and img.resource not in want.volumes:
            if img.reclaim == "Delete":
                v.orphans.append(f"volume image {name}: reclaimPolicy Delete, not wanted")
            else:
                v.retained += 1
    for vol in sorted(want.volumes):
        got = world.images.get(identity.volume_image_name(vol))
        if got is None or got.kind != "volume":
            v.missing.append(f"volume {vol}: image missing or not ours")
        elif got.size != want.volume_bytes:
            v.missing.append(f"volume {vol}: size {got.size}, want {want.volume_bytes}")


def _judge_attachments(world: World, want: Desired, v: Verdict) -> None:
    holders: dict[str, list[str]] = {}
    for d in world.domains:
        for disk in d.rbd_disks:
            holders.setdefault(disk, []).append(d.name)
    for vol in want.volumes:
        disk = f"{want.pool}/{identity.volume_image_name(vol)}"
        got = sorted(holders.get(disk, []))
        vm = want.attachments.get(vol)
        expect = [vm] if vm is not None and vm in want.vms else []
        if len(got) > 1:
            v.duplicates.append(f"volume {vol} attached to {got}")
        elif got != expect:
            v.missing.append(f"volume {vol}: attached to {got}, want {expect}")


def _mark(xml: str) -> int | None:
    root = ET.fromstring(xml)
    el = root.find(f"metadata/{{{identity.XMLNS}}}vm")
    if el is None:
        return None
    try:
        return int(el.get("vmid", "-1"))
    except ValueError:
        return -1


def _rbd_disks(xml: str) -> tuple[str, ...]:
    root = ET.fromstring(xml)
    out = []
    for d in root.findall("./devices/disk"):
        src = d.find("source")
        if src is not None and src.get("protocol") == "rbd":
            out.append(src.get("name", ""))
    return tuple(out)


def _image(io: Any, name: str) -> OurImage | None:
    from reconciler.backends.rbd_tmp import age_seconds

    scratch = identity.tmp_image_target(name) is not None
    try:
        with rbd.Image(io, name, read_only=True) as im:
            meta = dict(im.metadata_list())
            if not scratch and meta.get(identity.META_MANAGED_BY) != identity.MANAGED_BY:
                return None  # foreign (the lab's base image, another tool's)
            return OurImage(
                name=name,
                kind="scratch" if scratch else meta.get(identity.META_KIND, "?"),
                resource=meta.get(identity.META_NAME, ""),
                reclaim=meta.get(identity.META_RECLAIM, ""),
                size=int(im.size()),
                watchers=len(list(im.watchers_list())),
                age_s=age_seconds(im) if scratch else 0.0,
            )
    except rbd.ImageNotFound:
        return None


def export_sha256(lab: Lab, pool: str, image: str, timeout: float = 300.0) -> str:
    """sha256 of the image's bytes as `rbd export IMAGE -` streams them."""
    h = hashlib.sha256()
    with subprocess.Popen(
        ["rbd", "export", "--no-progress", f"{pool}/{image}", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=lab.ceph_env(),
    ) as proc:
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
            h.update(chunk)
        _, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"rbd export {pool}/{image}: {err.decode(errors='replace').strip()}")
    return h.hexdigest()
