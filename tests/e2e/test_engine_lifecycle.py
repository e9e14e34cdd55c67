"""End to end on the real lab: apply, drift repair, removal, and foreign things left alone.

One scenario in steps, each asserted on libvirt and RBD themselves:
1. a spec with 4 VMs (RBD clone roots of the lab's base image) and 4 attached volumes
   converges with one `volctl reconcile --once`; `volctl plan` then says no changes;
2. with `volctl run` going, a VM is destroyed and undefined and another VM's volume is
   detached (live and config) behind volctl's back: both come back;
3. a VM and a Retain volume leave the spec: the VM and its root clone go, the volume stays,
   detached, and is reported Released;
6. a foreign domain and a foreign RBD image are there all along and never change.
"""

from __future__ import annotations

import time
from pathlib import Path

import libvirt

from reconciler.identity import MANAGED_BY, META_MANAGED_BY
from reconciler.lab.info import LabInfo
from reconciler.lab.testing import LabPool, clone_base, create_volume, guest_xml

from .engine_support import (
    Controller,
    by_name,
    domains,
    guest_ready,
    images,
    volctl,
    wait_for,
    write_specs,
)

VMS: dict[str, str | None] = {"web1": None, "web2": None, "web3": "h2", "web4": "h2"}
VOLS = {f"data{i}": (1, "Retain") for i in range(1, 5)}
ATTS = {f"att{i}": (f"data{i}", f"web{i}") for i in range(1, 5)}


def foreign_things(lab: LabInfo, lab_pool: LabPool) -> tuple[str, str]:
    """A running foreign domain on h2 (its root is a foreign clone) and a foreign image."""
    root = clone_base(lab, lab_pool.pool, "legacy-root")
    create_volume(lab, lab_pool.pool, "legacy-data", size_mib=64)
    h2 = next(h for h in lab.hosts if h.name == "h2")
    conn = libvirt.open(h2.uri)
    try:
        xml = guest_xml(lab, "legacy-vm", root, lab_pool.root / "legacy-vm.log", memory_mib=128)
        conn.defineXML(xml).create()
        return conn.lookupByName("legacy-vm").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), root
    finally:
        conn.close()


def assert_converged_world(lab: LabInfo, lab_pool: LabPool, vms: dict[str, str | None],
                           atts: dict[str, tuple[str, str]]) -> None:  # fmt: skip
    doms = by_name(domains(lab))
    imgs = images(lab, lab_pool.pool)
    for vm, pin in vms.items():
        assert len(doms.get(vm, [])) == 1, f"{vm}: {doms.get(vm)}"
        d = doms[vm][0]
        assert d.active
        assert d.ours
        if pin:
            assert d.host == pin
        root = f"{lab_pool.pool}/vm-{vm}-root"
        assert d.live_disks["vda"] == root
        img = imgs[f"vm-{vm}-root"]
        assert img.parent == lab.base_image
        assert img.meta[META_MANAGED_BY] == MANAGED_BY
    for vol, vm in atts.values():
        d = doms[vm][0]
        want = f"{lab_pool.pool}/vol-{vol}"
        assert want in d.live_disks.values(), (vm, d.live_disks)
        assert want in d.config_disks.values(), (vm, d.config_disks)
        assert imgs[f"vol-{vol}"].meta[META_MANAGED_BY] == MANAGED_BY


def test_apply_drift_removal_and_foreign_survive(lab: LabInfo, lab_pool: LabPool) -> None:
    timings: dict[str, float] = {}
    foreign_xml, _ = foreign_things(lab, lab_pool)
    foreign_img = images(lab, lab_pool.pool)["legacy-data"]
    store = Path(lab_pool.config.store)
    consoles = Path(lab_pool.config.console_dir)

    # 1. apply and converge in one pass
    write_specs(store, lab, VMS, VOLS, ATTS)
    plan = volctl(lab_pool, "plan")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "vm/web1" in plan.stdout
    t0 = time.monotonic()
    rec = volctl(lab_pool, "reconcile", "--once")
    timings["1 apply 4 VMs + 4 volumes (one pass)"] = time.monotonic() - t0
    assert rec.returncode == 0, rec.stdout + rec.stderr[-3000:]
    assert_converged_world(lab, lab_pool, VMS, ATTS)
    again = volctl(lab_pool, "plan")
    assert again.returncode == 0, again.stdout + again.stderr

    # 2. out-of-band: destroy+undefine web1, detach data2 from web2 (live and config)
    run = Controller(lab_pool)
    run.start()
    try:
        wait_for(lambda: run.status()["converged"], 120, "volctl run to report converged")
        wait_for(lambda: guest_ready(consoles, "web2"), 240, "web2's guest to boot")
        h1 = next(h for h in lab.hosts if h.name == by_name(domains(lab))["web1"][0].host)
        host2 = by_name(domains(lab))["web2"][0].host
        h2 = next(h for h in lab.hosts if h.name == host2)
        t0 = time.monotonic()
        gen = run.status()["generation"]
        conn = libvirt.open(h1.uri)
        try:
            dom = conn.lookupByName("web1")
            dom.destroy()
            dom.undefine()
        finally:
            conn.close()
        conn = libvirt.open(h2.uri)
        try:
            dom = conn.lookupByName("web2")
            disk = next(line for line in dom.XMLDesc(0).split("<disk")[1:] if "vol-data2" in line)
            flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
            dom.detachDeviceFlags("<disk" + disk.split("</disk>")[0] + "</disk>", flags)
        finally:
            conn.close()

        def repaired() -> bool:
            doms = by_name(domains(lab))
            web1 = doms.get("web1", [])
            web2 = doms["web2"][0]
            want = f"{lab_pool.pool}/vol-data2"
            data1 = f"{lab_pool.pool}/vol-data1"
            return (
                len(web1) == 1
                and web1[0].active
                and data1 in web1[0].live_disks.values()
                and want in web2.live_disks.values()
                and want in web2.config_disks.values()
            )

        wait_for(repaired, 120, "web1 recreated and data2 re-attached", every=0.25)
        timings["2 drift repaired (VM recreated, volume re-attached)"] = time.monotonic() - t0
        run.wait_converged(after=gen, timeout=120)
        assert_converged_world(lab, lab_pool, VMS, ATTS)
        vm1 = run.status("vms/web1")
        assert "DriftCorrected" in [e["reason"] for e in vm1["events"]]

        # 2b. grow data2 online: RBD grows and the running guest's disk is told
        t0 = time.monotonic()
        gen = run.status()["generation"]
        grown = {**VOLS, "data2": (2, "Retain")}
        write_specs(store, lab, VMS, grown, ATTS)
        wait_for(
            lambda: images(lab, lab_pool.pool)["vol-data2"].size == 2 << 30, 60, "data2 at 2 GiB"
        )
        run.wait_converged(after=gen, timeout=120)
        conn = libvirt.open(h2.uri)
        try:
            info = conn.lookupByName("web2").blockInfo(
                next(t for t, s in by_name(domains(lab))["web2"][0].live_disks.items()
                     if s.endswith("/vol-data2"))
            )  # fmt: skip
        finally:
            conn.close()
        assert info[0] == 2 << 30  # capacity qemu reports for the live disk
        timings["2b volume grown online"] = time.monotonic() - t0

        # 3. web4 and data3 leave the spec (data3 is Retain)
        wait_for(lambda: guest_ready(consoles, "web3"), 240, "web3's guest to boot")
        vms = {k: v for k, v in VMS.items() if k != "web4"}
        vols = dict(grown)
        del vols["data3"]
        atts = {k: v for k, v in ATTS.items() if k in ("att1", "att2")}
        t0 = time.monotonic()
        gen = run.status()["generation"]
        write_specs(store, lab, vms, {**vols}, atts)

        def removed() -> bool:
            doms = by_name(domains(lab))
            imgs = images(lab, lab_pool.pool)
            attached = [
                d
                for ds in doms.values()
                for d in ds
                if any("vol-data3" in s for s in (*d.live_disks.values(), *d.config_disks.values()))
            ]
            return "web4" not in doms and "vm-web4-root" not in imgs and not attached

        wait_for(removed, 120, "web4 and its root gone, data3 detached", every=0.25)
        timings["3 VM removed and Retain volume released"] = time.monotonic() - t0
        run.wait_converged(after=gen, timeout=120)
        imgs = images(lab, lab_pool.pool)
        assert "vol-data3" in imgs
        assert imgs["vol-data3"].meta[META_MANAGED_BY] == MANAGED_BY
        assert "vol-data4" in imgs  # still in the spec, just unattached now
        assert run.status("volumes/data3")["phase"] == "Released"
        assert_converged_world(lab, lab_pool, vms, atts)
    finally:
        code = run.stop()
    assert code == 0, run.log()

    # 6. the foreign domain and image were never touched
    legacy = by_name(domains(lab))["legacy-vm"]
    assert len(legacy) == 1
    assert legacy[0].active
    assert not legacy[0].ours
    conn = libvirt.open(next(h for h in lab.hosts if h.name == "h2").uri)
    try:
        now = conn.lookupByName("legacy-vm").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()
    assert now == foreign_xml
    imgs = images(lab, lab_pool.pool)
    assert imgs["legacy-data"] == foreign_img
    assert "legacy-root" in imgs
    for name, secs in timings.items():
        print(f"TIMING {name}: {secs:.1f}s")
