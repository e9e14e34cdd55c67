"""The baseline: what the seed COL did, one VM at a time, straight libvirt and RBD calls.

For each VM in order: clone the root disk from the base snapshot and grow it, define the
domain, start it, create the volume, attach it live and persistent.  It is the cheapest
possible sequence of calls with no observation, planning or concurrency at all, so it is also
where the per-call timings for the critical-path bound come from.  The re-run does what an
idempotent script of that style does: look every domain up, check it runs, open both images
and read the live XML to see whether the volume is attached.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import libvirt
import rados
import rbd

from bench.common.fleet import GIB, Fleet
from bench.tools.base import Call, ToolRun

AFFECT_LIVE_CONFIG = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG


class Baseline:
    name = "baseline"
    rbd_backed = True

    def __init__(self) -> None:
        self.last_calls: list[Call] = []
        self.notes = [
            "baseline: sequential libvirt-python + python-rbd calls, one VM at a time "
            "(rbd clone+resize, defineXML, create, rbd create, attachDeviceFlags LIVE|CONFIG), "
            "one connection per host kept open; no concurrency"
        ]

    def prepare(self, fleet: Fleet) -> None:
        pass

    def _session(
        self, fleet: Fleet
    ) -> tuple[rados.Rados, rados.Ioctx, dict[str, libvirt.virConnect]]:
        cluster = rados.Rados(conffile=fleet.lab.info.ceph_conf)
        cluster.connect(timeout=30)
        ioctx = cluster.open_ioctx(fleet.lab.info.pool)
        conns = {h: libvirt.open(fleet.lab.host(h).uri) for h in fleet.hosts}
        return cluster, ioctx, conns

    def converge(self, fleet: Fleet) -> ToolRun:
        run = ToolRun(ok=True)
        cluster, ioctx, conns = self._session(fleet)
        ppool, rest = fleet.parent.split("/", 1)
        pimage, psnap = rest.split("@", 1)
        pioctx = cluster.open_ioctx(ppool)
        r = rbd.RBD()

        @contextlib.contextmanager
        def timed(host: str, vm: str, op: str) -> Iterator[None]:
            t0 = time.perf_counter()
            yield
            run.calls.append(Call(host, vm, op, time.perf_counter() - t0))

        try:
            for vm in fleet.vms:
                conn = conns[vm.host]
                with timed("ceph", vm.name, "rbd.clone"):
                    r.clone(pioctx, pimage, psnap, ioctx, vm.root_image)
                with timed("ceph", vm.name, "rbd.resize"), rbd.Image(ioctx, vm.root_image) as img:
                    img.resize(fleet.disk_gib * GIB)
                with timed(vm.host, vm.name, "define"):
                    dom = conn.defineXML(fleet.domain_xml(vm))
                with timed(vm.host, vm.name, "start"):
                    dom.create()
                with timed("ceph", vm.name, "rbd.create"):
                    r.create(ioctx, vm.volume_image, fleet.volume_gib * GIB, old_format=False)
                with timed(vm.host, vm.name, "attach"):
                    dom.attachDeviceFlags(fleet.disk_xml(vm), AFFECT_LIVE_CONFIG)
        except (libvirt.libvirtError, rbd.Error, rados.Error) as exc:
            run.ok, run.error = False, f"{type(exc).__name__}: {exc}"
        finally:
            for c in conns.values():
                c.close()
            pioctx.close()
            ioctx.close()
            cluster.shutdown()
        self.last_calls = run.calls
        return run

    def rerun(self, fleet: Fleet) -> ToolRun:
        """Idempotent re-run: check everything, change nothing that is already right."""
        run = ToolRun(ok=True)
        cluster, ioctx, conns = self._session(fleet)
        changes = 0
        try:
            for vm in fleet.vms:
                conn = conns[vm.host]
                for image in (vm.root_image, vm.volume_image):
                    with rbd.Image(ioctx, image, read_only=True):
                        pass  # exists (a missing one raises, and this run fails)
                try:
                    dom = conn.lookupByName(vm.name)
                except libvirt.libvirtError:
                    dom = conn.defineXML(fleet.domain_xml(vm))
                    changes += 1
                if not dom.isActive():
                    dom.create()
                    changes += 1
                if f"name='{fleet.lab.info.pool}/{vm.volume_image}'" not in dom.XMLDesc(0):
                    dom.attachDeviceFlags(fleet.disk_xml(vm), AFFECT_LIVE_CONFIG)
                    changes += 1
        except (libvirt.libvirtError, rbd.Error, rados.Error) as exc:
            run.ok, run.error = False, f"{type(exc).__name__}: {exc}"
        finally:
            for c in conns.values():
                c.close()
            ioctx.close()
            cluster.shutdown()
        run.extra["changes"] = changes
        return run

    def cleanup(self, fleet: Fleet) -> None:
        pass

    def close(self) -> None:
        pass
