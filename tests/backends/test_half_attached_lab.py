"""A disk only one of a running domain's definitions holds, on a real libvirtd (R1 defect 6).

R1 (seed 473317888, trial 7) left an image in a domain's persistent definition at vdd and
in its live domain at vdb; every later attach to that domain chose vdd ("free" live) and
libvirt's persistent definition refused it, pass after pass.  Here the same split is made
with libvirt's own calls on a running lab domain (hot-plug needs no booted guest), then:
the observation reports the persistent definition's targets, and an attach that adds the
missing half of a half-attached disk gives it the target its other half has.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.backends import domxml
from reconciler.lab.info import LabInfo
from reconciler.payload import DiskSpec
from tests.backends.test_libvirt_lab import Guest

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
MiB = 1 << 20
LIVE, CONFIG = libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG


@pytest.fixture
def running(lab: LabInfo, tmp_path: Path) -> Iterator[Guest]:
    g = Guest(lab, tmp_path)
    g.storage.clone(lab.base_image, g.root, 0, {"volctl.kind": "root"})
    for vol in ("a", "b", "c"):
        g.storage.create(f"{g.prefix}-{vol}", 8 * MiB, {"volctl.kind": "volume"})
    g.hv.define(g.spec())
    g.hv.start(g.name)  # no need to wait for the boot: attaching needs no guest
    try:
        yield g
    finally:
        with contextlib.suppress(Exception):  # the volumes are open while the domain runs
            g.hv.destroy(g.name)
        for vol in ("a", "b", "c"):
            with contextlib.suppress(Exception):
                g.storage.remove(f"{g.prefix}-{vol}")
        g.close()


def disk(g: Guest, vol: str, target: str) -> DiskSpec:
    return DiskSpec(
        rbd_image=f"{g.lab.pool}/{g.prefix}-{vol}", target=target, serial=vol, ceph=g.ceph
    )


def targets(g: Guest, flags: int) -> dict[str, str]:
    dom = g.hv.libvirt_connection().lookupByName(g.name)
    parsed = domxml.parse_domain(dom.XMLDesc(flags))
    vols = [d for d in parsed.disks if d.rbd_image and not d.rbd_image.endswith("-root")]
    return {d.target: str(d.rbd_image).rsplit("-", 1)[-1] for d in vols}


def test_persistent_only_targets_are_observed_and_attaches_align(running: Guest) -> None:
    g = running
    dom = g.hv.libvirt_connection().lookupByName(g.name)
    # the state R1 left: a live at vdb, a persistent at vdd; b only persistent, at vde
    dom.attachDeviceFlags(domxml.render_disk(disk(g, "a", "vdb")), LIVE)
    dom.attachDeviceFlags(domxml.render_disk(disk(g, "a", "vdd")), CONFIG)
    dom.attachDeviceFlags(domxml.render_disk(disk(g, "b", "vde")), CONFIG)

    seen = g.hv.observe().domain(g.name)
    assert seen is not None
    assert {d.target for d in seen.disks} == {"vda", "vdb"}  # live
    assert seen.config_targets == frozenset({"vda", "vdd", "vde"})  # persistent

    # b's live half is added at the target its persistent half has, not the planner's vdf
    g.hv.attach_disk(g.name, disk(g, "b", "vdf"))
    assert targets(g, 0)["vde"] == "b"
    assert targets(g, libvirt.VIR_DOMAIN_XML_INACTIVE)["vde"] == "b"
    assert "vdf" not in targets(g, 0)

    # c, new, at a target free in both definitions: attached in both at once
    g.hv.attach_disk(g.name, disk(g, "c", "vdc"))
    assert targets(g, 0) == {"vdb": "a", "vdc": "c", "vde": "b"}
    assert targets(g, libvirt.VIR_DOMAIN_XML_INACTIVE) == {"vdc": "c", "vdd": "a", "vde": "b"}
