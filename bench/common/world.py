"""Direct, tool-independent access to the lab's libvirt hosts and Ceph pool.

The benchmarks judge every tool, volctl included, by the state of the world, so they read
libvirt and RBD themselves instead of asking a tool.  This is also where cleanup lives: it
removes only what carries the benchmark's name prefix, never anything else in the lab.
"""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

import libvirt
import rados
import rbd

from bench.common.lab import Lab

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised, not printed


# every read of the judge ends: a PG left laggy by a fault must fail the read (and the
# check be retried), not hang the campaign past its test's timeout with nothing said
JUDGE_OP_TIMEOUT_S = 30


def judge_cluster(lab: Lab) -> rados.Rados:
    """A connected client of the lab's Ceph whose every mon and OSD op times out."""
    secs = str(JUDGE_OP_TIMEOUT_S)
    cluster = rados.Rados(
        conffile=lab.info.ceph_conf,
        conf={"rados_osd_op_timeout": secs, "rados_mon_op_timeout": secs},
    )
    try:
        cluster.connect(timeout=JUDGE_OP_TIMEOUT_S)
    except rados.Error:
        cluster.shutdown()
        raise
    return cluster


@contextlib.contextmanager
def ceph(lab: Lab, pool: str | None = None) -> Iterator[rados.Ioctx]:
    """An ioctx on the lab's pool (or POOL) with bounded ops."""
    cluster = judge_cluster(lab)
    try:
        ioctx = cluster.open_ioctx(pool or lab.info.pool)
        try:
            yield ioctx
        finally:
            ioctx.close()
    finally:
        cluster.shutdown()


@dataclass(frozen=True)
class DomainView:
    name: str
    active: bool
    rbd_disks: dict[str, str]  # target dev -> "pool/image" (live XML)
    disk_targets: tuple[str, ...] = ()  # every device='disk' target, any backing


def domains(uri: str, prefix: str) -> dict[str, DomainView]:
    conn = libvirt.open(uri)
    try:
        out = {}
        for dom in conn.listAllDomains(0):
            name = dom.name()
            if not name.startswith(prefix):
                continue
            root = ET.fromstring(dom.XMLDesc(0))
            disks = {}
            targets = []
            for d in root.findall("./devices/disk"):
                src, tgt = d.find("source"), d.find("target")
                if tgt is not None and d.get("device", "disk") == "disk":
                    targets.append(tgt.get("dev", ""))
                if src is not None and tgt is not None and src.get("protocol") == "rbd":
                    disks[tgt.get("dev", "")] = src.get("name", "")
            out[name] = DomainView(
                name=name, active=bool(dom.isActive()), rbd_disks=disks, disk_targets=tuple(targets)
            )
        return out
    finally:
        conn.close()


def cleanup(lab: Lab, prefix: str, image_prefixes: tuple[str, ...]) -> dict[str, int]:
    """Destroy and undefine every domain named `prefix*` on every lab host, then remove the
    RBD images whose names start with one of `image_prefixes` (children before parents)."""
    removed_domains = 0
    for h in lab.info.hosts:
        conn = libvirt.open(h.uri)
        try:
            for dom in conn.listAllDomains(0):
                if not dom.name().startswith(prefix):
                    continue
                if dom.isActive():
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
                with contextlib.suppress(libvirt.libvirtError):
                    dom.undefineFlags(0)
                removed_domains += 1
        finally:
            conn.close()
    removed_images = 0
    with ceph(lab) as ioctx:
        names = [n for n in rbd.RBD().list(ioctx) if n.startswith(image_prefixes)]
        for name in names:
            deadline = time.monotonic() + 30
            while True:
                try:
                    rbd.RBD().remove(ioctx, name)
                    removed_images += 1
                    break
                except rbd.ImageNotFound:
                    break
                except (rbd.ImageBusy, rbd.ImageHasSnapshots):
                    # a qemu that was just killed may hold its watch for a moment
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
    return {"domains": removed_domains, "images": removed_images}
