"""The Observer tells the real RBD pool which images running domains hold.

A host here is a stand-in that reports one running domain with an RBD disk (what
`LibvirtHypervisor` reports for a guest), because what is under test is the pool's side: an
image whose domain is gone must come with its watchers read *in the same observation*, not
from the read made while the domain held it.  The watcher is a real librbd client."""

from __future__ import annotations

from typing import cast

import pytest
import rados
import rbd

from reconciler.backends.protocols import Hypervisor
from reconciler.backends.rbd_backend import RbdStorage
from reconciler.identity import META_KIND
from reconciler.lab.testing import LabPool
from reconciler.observe.observer import Observer, held_images
from reconciler.observe.types import DomainState, ObservedDisk, ObservedDomain, ObservedHost

pytestmark = pytest.mark.lab


class OneGuestHost:
    """A host with one running domain that has `image` as its disk, until `gone`."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.gone = False

    def observe(self) -> ObservedHost:
        dom = ObservedDomain(
            name="guest",
            uuid="00000000-0000-4000-8000-000000000001",
            state=DomainState.RUNNING,
            vcpus=1,
            memory_mib=128,
            mark=None,
            disks=(ObservedDisk("vdb", self.image),),
        )
        return ObservedHost("h1", reachable=True, domains=() if self.gone else (dom,))


def test_held_images_name_the_running_domains_disks() -> None:
    host = OneGuestHost("p/vol-a")
    assert held_images({"h1": host.observe()}) == {
        "p/vol-a": "h1/00000000-0000-4000-8000-000000000001"
    }
    assert held_images({"h1": ObservedHost("h1", reachable=False)}) == {}


def test_a_departed_domain_s_image_shows_fresh_watchers_in_the_same_observation(
    lab_pool: LabPool,
) -> None:
    info = lab_pool.info
    host = OneGuestHost(f"{lab_pool.pool}/vol-a")
    storage = RbdStorage(info.ceph_conf, lab_pool.pool, info.ceph_user, timeout=600)
    qemu = rados.Rados(conffile=info.ceph_conf, rados_id=info.ceph_user)
    qemu.connect(timeout=10)
    try:
        storage.create("vol-a", 1 << 20, {META_KIND: "volume"})
        observer = Observer({"h1": cast(Hypervisor, host)}, storage, timeout=600)
        io = qemu.open_ioctx(lab_pool.pool)
        guest_disk = rbd.Image(io, "vol-a")  # the guest's qemu has it open
        observer.observe()  # everything read; now the pool knows the holdings
        observer.observe()  # read again, under a watch, as held
        held = observer.observe()
        assert len(held.storage.images["vol-a"].watchers) == 1
        assert "open" not in held.storage.calls  # served from the previous read

        guest_disk.close()  # the guest is destroyed out of band: its qemu goes away
        host.gone = True
        world = observer.observe()
        assert world.storage.images["vol-a"].watchers == ()
        storage.remove("vol-a")  # and nothing of ours holds it any more
        assert "vol-a" not in observer.observe().storage.images
    finally:
        qemu.shutdown()
        storage.close()
