"""The Observer on the real lab: every libvirtd host and the Ceph pool in one world."""

from __future__ import annotations

import pytest

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.backends.rbd_backend import RbdStorage
from reconciler.lab.testing import LabPool
from reconciler.observe.observer import Observer

pytestmark = pytest.mark.lab


def test_lab_world(lab_pool: LabPool) -> None:
    info = lab_pool.info
    hvs = {h.name: LibvirtHypervisor(h.name, h.uri) for h in info.hosts}
    storage = RbdStorage(info.ceph_conf, lab_pool.pool, info.ceph_user)
    try:
        storage.create("vol-x", 1 << 20, {"volctl.kind": "volume"})
        world = Observer(hvs, storage, timeout=20).observe(external_snapshots=(info.base_image,))
        assert world.all_hosts_known
        assert sorted(world.hosts) == sorted(h.name for h in info.hosts)
        for h in world.hosts.values():
            assert h.cpus > 0
            assert h.memory_mib > 0
            assert h.hostname == h.name  # each lab host has its own UTS namespace
        assert world.storage.reachable
        assert world.storage.pool == lab_pool.pool
        assert world.storage.images["vol-x"].ours
        assert world.storage.external_snapshots == {info.base_image: True}
    finally:
        storage.remove("vol-x")
        for hv in hvs.values():
            hv.close()
        storage.close()
