"""Did a tool really reach the end state?  Checked by observing libvirt and Ceph.

A benchmark reports a tool's time only next to the verdict of this check.  For every VM of
the fleet it requires, on the VM's own host and nowhere else: a running domain whose live
XML has the root clone at vda and the volume attached; in Ceph, the root image as a COW
clone of the base snapshot grown to the instance type's disk size, the volume with its size,
and both images opened by a client (qemu's watcher), which proves the guest really holds
them and not only that the XML says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rbd

from bench.common.fleet import GIB, Fleet
from bench.common.world import ceph, domains


@dataclass
class Verdict:
    ok: bool
    checked_vms: int
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked_vms": self.checked_vms,
            "problems": self.problems[:20],
            "problem_count": len(self.problems),
        }


def verify_fleet(fleet: Fleet, *, rbd_backed: bool = True) -> Verdict:
    """`rbd_backed=False` checks only the libvirt side (for a tool that cannot use RBD)."""
    problems: list[str] = []
    pool = fleet.lab.info.pool
    seen: dict[str, list[str]] = {}
    views = {}
    for h in fleet.lab.info.hosts:
        for name, view in domains(h.uri, fleet.prefix + "-").items():
            seen.setdefault(name, []).append(h.name)
            views[(h.name, name)] = view
    for vm in fleet.vms:
        where = seen.get(vm.name, [])
        if where != [vm.host]:
            problems.append(f"{vm.name}: expected on {vm.host}, found on {where or 'no host'}")
            continue
        view = views[(vm.host, vm.name)]
        if not view.active:
            problems.append(f"{vm.name}: not running")
        if not rbd_backed:
            if not {"vda", vm.target} <= set(view.disk_targets):
                problems.append(f"{vm.name}: disks {view.disk_targets}, expected vda+{vm.target}")
            continue
        root = f"{pool}/{vm.root_image}"
        vol = f"{pool}/{vm.volume_image}"
        if view.rbd_disks.get("vda") != root:
            problems.append(f"{vm.name}: vda is {view.rbd_disks.get('vda')}, expected {root}")
        if vol not in view.rbd_disks.values():
            problems.append(f"{vm.name}: volume {vol} not in the live XML")
    extra = sorted(set(seen) - {v.name for v in fleet.vms})
    if extra:
        problems.append(f"unexpected domains: {extra[:5]}")
    if rbd_backed:
        problems += _check_ceph(fleet)
    return Verdict(ok=not problems, checked_vms=len(fleet.vms), problems=problems)


def _check_ceph(fleet: Fleet) -> list[str]:
    problems: list[str] = []
    parent_pool, rest = fleet.parent.split("/", 1)
    parent_image, parent_snap = rest.split("@", 1)
    with ceph(fleet.lab) as ioctx:
        for vm in fleet.vms:
            for name, size, want_parent in (
                (vm.root_image, fleet.disk_gib * GIB, True),
                (vm.volume_image, fleet.volume_gib * GIB, False),
            ):
                try:
                    with rbd.Image(ioctx, name, read_only=True) as img:
                        if img.size() != size:
                            problems.append(f"{name}: size {img.size()}, expected {size}")
                        if want_parent:
                            try:
                                pinfo = img.parent_info()  # (pool, image, snap)
                            except rbd.ImageNotFound:
                                pinfo = None
                            if pinfo != (parent_pool, parent_image, parent_snap):
                                problems.append(f"{name}: parent {pinfo}, expected {fleet.parent}")
                        if not list(img.watchers_list()):
                            problems.append(f"{name}: no watcher (not opened by qemu)")
                except rbd.ImageNotFound:
                    problems.append(f"{name}: missing in Ceph")
    return problems
