"""LibvirtHypervisor on a real libvirtd (qemu TCG) with RBD disks from the lab's Ceph.

One guest per test module (booting costs seconds on 2 cores).  Every step is checked on the
real state: libvirt's live XML, Ceph watchers, and what the guest prints on its console.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import rados
import rbd

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.backends.protocols import EventKind
from reconciler.backends.rbd_backend import RbdStorage
from reconciler.lab.info import LabInfo
from reconciler.observe.types import DomainState
from reconciler.payload import CephAccess, DiskSpec, DomainSpec

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]
# TCG on 2 shared cores: a boot takes 8-15 s idle but minutes when the machine is loaded
BOOT = 400
SLOW = 120
MiB = 1 << 20


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Guest:
    """A managed VM on lab host 1, booted from an RBD clone of the lab's base image."""

    def __init__(self, lab: LabInfo, tmp: Path) -> None:
        self.lab = lab
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self.name = f"{self.prefix}-vm"
        self.console = tmp / "console.log"
        self.ceph = CephAccess(
            monitors=lab.monitors,
            auth_user=lab.ceph_user,
            secret_uuid=lab.secret_uuid,
            pool=lab.pool,
        )
        self.storage = RbdStorage(lab.ceph_conf, lab.pool, lab.ceph_user)
        self.hv = LibvirtHypervisor(
            "h1", lab.hosts[0].uri, timeout=30, installation=self.storage.installation
        )
        self.root = f"{self.prefix}-root"
        self.events: list[tuple[str, str, str]] = []
        self.event_seen = threading.Condition()
        self.hv.watch_events(self._record)

    def _record(self, host: str, kind: str, name: str) -> None:
        with self.event_seen:
            self.events.append((host, kind, name))
            self.event_seen.notify_all()

    def spec(self) -> DomainSpec:
        return DomainSpec(
            name=self.name,
            vmid=4242,
            spec_hash="lab",
            vcpus=1,
            memory_mib=192,
            root_image=f"{self.lab.pool}/{self.root}",
            console_log=str(self.console),
            ceph=self.ceph,
        )

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def watchers(self, image: str) -> list[str]:
        cluster = rados.Rados(conffile=self.lab.ceph_conf, rados_id=self.lab.ceph_user)
        cluster.connect(timeout=10)
        try:
            with (
                cluster.open_ioctx(self.lab.pool) as io,
                rbd.Image(io, image, read_only=True) as im,
            ):
                return [str(w["addr"]) for w in im.watchers_list()]
        finally:
            cluster.shutdown()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best-effort teardown
            self.hv.destroy(self.name)
        for image in (f"{self.prefix}-vol", self.root):
            with contextlib.suppress(Exception):
                self.storage.remove(image)
        self.hv.close()
        self.storage.close()


@pytest.fixture(scope="module")
def guest(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    g = Guest(lab, tmp_path_factory.mktemp("guest"))
    g.storage.clone(lab.base_image, g.root, 0, {"volctl.kind": "root"})
    g.hv.define(g.spec())
    g.hv.start(g.name)
    wait_for("the guest to boot", lambda: "VOLCTL-GUEST: ready" in g.console_text(), BOOT)
    yield g
    g.close()


def test_guest_runs_from_its_rbd_clone(guest: Guest) -> None:
    d = guest.hv.observe().domain(guest.name)
    assert d is not None
    assert d.state == DomainState.RUNNING
    assert d.mark is not None
    assert d.mark.vmid == 4242
    assert [(x.target, x.rbd_image) for x in d.disks] == [("vda", f"rbd/{guest.root}")]
    assert guest.watchers(guest.root), "qemu should hold the root clone open"
    guest.hv.define(guest.spec())  # same spec: no-op, even while running
    guest.hv.start(guest.name)


def test_live_attach_resize_and_detach(guest: Guest, lab: LabInfo) -> None:
    vol = f"{guest.prefix}-vol"
    image = f"{lab.pool}/{vol}"
    serial = f"vol-{guest.prefix}"
    guest.storage.create(vol, 8 * MiB, {"volctl.kind": "volume"})
    disk = DiskSpec(rbd_image=image, target="vdb", serial=serial, ceph=guest.ceph)

    guest.hv.attach_disk(guest.name, disk)
    guest.hv.attach_disk(guest.name, disk)  # idempotent
    d = guest.hv.observe().domain(guest.name)
    assert d is not None
    vdb = [x for x in d.disks if x.rbd_image == image]
    assert [(x.target, x.serial, x.persistent) for x in vdb] == [("vdb", serial, True)]
    assert guest.watchers(vol), "qemu should hold the volume open"
    wait_for("the guest to see the disk", lambda: f":{serial}" in guest.console_text(), SLOW)

    # Grow: RBD first, then tell the guest.  qemu's virtio-blk capacity is what the guest's
    # disk reports (the lab guest prints device names and serials, not sizes).
    guest.storage.resize(vol, 16 * MiB)
    dom = guest.hv.libvirt_connection().lookupByName(guest.name)
    assert dom.blockInfo("vdb")[0] == 8 * MiB  # qemu (and the guest) do not know yet
    guest.hv.resize_disk(guest.name, image, 16 * MiB)
    assert dom.blockInfo("vdb")[0] == 16 * MiB
    guest.hv.resize_disk(guest.name, image, 8 * MiB)  # never shrinks
    assert dom.blockInfo("vdb")[0] == 16 * MiB
    assert guest.storage.observe().images[vol].size_bytes == 16 * MiB

    # Detach is only requested; completion is the DEVICE_REMOVED event / the live XML.
    with guest.event_seen:
        guest.events.clear()
    guest.hv.detach_disk(guest.name, image)
    with guest.event_seen:
        assert guest.event_seen.wait_for(
            lambda: ("h1", EventKind.DEVICE_REMOVED, guest.name) in guest.events, SLOW
        ), f"no DEVICE_REMOVED event, got {guest.events}"
    d = guest.hv.observe().domain(guest.name)
    assert d is not None
    assert [x.rbd_image for x in d.disks] == [f"rbd/{guest.root}"]
    wait_for("qemu to close the volume", lambda: not guest.watchers(vol), SLOW)
    wait_for("the guest to lose the disk", lambda: _last_blocks(guest).find(serial) < 0, SLOW)
    guest.hv.detach_disk(guest.name, image)  # idempotent once gone


def _last_blocks(guest: Guest) -> str:
    lines = [ln for ln in guest.console_text().splitlines() if "VOLCTL-GUEST: blocks" in ln]
    return lines[-1] if lines else ""


def test_steady_state_on_a_real_daemon_fetches_no_xml(guest: Guest) -> None:
    guest.hv.observe()
    before = guest.hv.rpc_stats()
    for _ in range(3):
        guest.hv.observe()
    after = guest.hv.rpc_stats()
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert delta == {"getAllDomainStats": 3}


def test_shutdown_and_destroy_of_a_running_guest(guest: Guest) -> None:
    guest.hv.shutdown(guest.name)
    assert guest.hv.observe().domain(guest.name).state == DomainState.SHUTOFF  # type: ignore[union-attr]
    guest.hv.destroy(guest.name)
    assert guest.hv.observe().domain(guest.name) is None
    wait_for("qemu to close the root clone", lambda: not guest.watchers(guest.root), SLOW)
