"""End to end: `volctl run` killed with SIGKILL in the middle of an apply, then restarted.

Every action is "ensure this exists with this identity" and identities live on the
resources (libvirt metadata, RBD image-meta), so the restarted controller must finish the
job with exactly one domain per VM, no orphan image and no foreign thing touched.
Asserted on libvirt and RBD directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import libvirt

from reconciler.identity import MANAGED_BY, META_ID, META_MANAGED_BY, META_NAME, TMP_PREFIX
from reconciler.lab.info import LabInfo
from reconciler.lab.testing import LabPool, create_volume, guest_xml

from .engine_support import Controller, by_name, domains, images, wait_for, write_specs

VMS: dict[str, str | None] = {f"web{i}": None for i in range(1, 5)}
VOLS = {f"data{i}": (1, "Retain") for i in range(1, 5)}
ATTS = {f"att{i}": (f"data{i}", f"web{i}") for i in range(1, 5)}


def kill_and_restart(lab: LabInfo, lab_pool: LabPool, killed_when: Callable[[], bool]) -> None:
    create_volume(lab, lab_pool.pool, "legacy-data", size_mib=64)
    h1 = lab.hosts[0]
    conn = libvirt.open(h1.uri)
    try:  # a defined, stopped foreign domain whose disk is the foreign image
        xml = guest_xml(lab, "legacy-vm", f"{lab_pool.pool}/legacy-data", lab_pool.root / "l.log")
        conn.defineXML(xml)
        foreign_xml = conn.lookupByName("legacy-vm").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()
    foreign_img = images(lab, lab_pool.pool)["legacy-data"]
    write_specs(Path(lab_pool.config.store), lab, VMS, VOLS, ATTS)

    # slow the apply down (one action per host, two in total) so the kill lands inside it
    run = Controller(lab_pool, "--per-host", "1", "--parallel", "2")
    run.start()
    try:
        wait_for(killed_when, 120, "the moment to kill", every=0.05)
    finally:
        run.kill()
    killed_at = {d.name: d.active for d in domains(lab) if d.ours}
    imgs_at_kill = sorted(images(lab, lab_pool.pool))
    print(f"KILLED with domains {killed_at} and images {imgs_at_kill}")
    assert len(killed_at) < len(VMS) or not all(killed_at.values())

    t0 = time.monotonic()
    run.extra = ()  # the restarted controller runs with the default limits
    run.start()
    try:
        wait_for(lambda: run.status()["converged"], 180, "the restarted controller to converge")
        converge_s = time.monotonic() - t0
        # scratch images of the killed run are debris: swept by observe after the grace period
        wait_for(
            lambda: not [n for n in images(lab, lab_pool.pool) if n.startswith(TMP_PREFIX)],
            90,
            "scratch images of the killed run to be swept",
        )
    finally:
        code = run.stop()
    assert code == 0, run.log()

    doms = by_name(domains(lab))
    imgs = images(lab, lab_pool.pool)
    vmids = set()
    for vm in VMS:
        assert len(doms[vm]) == 1, f"{vm} exists {len(doms[vm])} times: {doms[vm]}"
        d = doms[vm][0]
        assert d.active
        assert d.ours
        assert d.live_disks["vda"] == f"{lab_pool.pool}/vm-{vm}-root"
        vmids.add(imgs[f"vm-{vm}-root"].meta[META_ID])
    assert len(vmids) == len(VMS)  # one identity per VM, none reassigned
    for vol, vm in ATTS.values():
        assert f"{lab_pool.pool}/vol-{vol}" in doms[vm][0].live_disks.values()
    want = {f"vm-{v}-root" for v in VMS} | {f"vol-{v}" for v in VOLS} | {"legacy-data"}
    assert set(imgs) == want, f"orphans: {set(imgs) - want}, missing: {want - set(imgs)}"
    for name, img in imgs.items():
        if name != "legacy-data":
            assert img.meta[META_MANAGED_BY] == MANAGED_BY, name
            assert img.meta[META_NAME] in name
    legacy = doms["legacy-vm"]
    assert len(legacy) == 1
    assert not legacy[0].ours
    assert not legacy[0].active
    conn = libvirt.open(h1.uri)
    try:
        assert (
            conn.lookupByName("legacy-vm").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == foreign_xml
        )
    finally:
        conn.close()
    assert imgs["legacy-data"] == foreign_img
    print(f"TIMING 4 restart after SIGKILL -> converged: {converge_s:.1f}s")


def test_sigkill_while_domains_are_being_created(lab: LabInfo, lab_pool: LabPool) -> None:
    """Killed once every image exists (marked) and some, not all, domains are defined."""

    def domains_half_done() -> bool:
        imgs = images(lab, lab_pool.pool)
        marked = [i for i in imgs.values() if i.meta.get(META_MANAGED_BY) == MANAGED_BY]
        ours = [d for d in domains(lab) if d.ours]
        return len(marked) == 8 and len(ours) >= 1 and sum(d.active for d in ours) < len(VMS)

    kill_and_restart(lab, lab_pool, domains_half_done)


def test_sigkill_while_images_are_being_created(lab: LabInfo, lab_pool: LabPool) -> None:
    """Killed as soon as the first image appears in RBD: its scratch name (created, maybe not
    marked yet) or an already renamed root clone."""

    def first_clone() -> bool:
        return any(n.startswith(("vm-", TMP_PREFIX)) for n in images(lab, lab_pool.pool))

    kill_and_restart(lab, lab_pool, first_clone)
