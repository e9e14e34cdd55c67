"""The RBD observe in O(changes), on the lab's real Ceph: what a pass reads, and what it sees.

"One resync" in volctl is one pass: every pass, the periodic resync's included, observes the
pool once, so an out-of-band change must show in the first `observe()` after it.  Changes
are made by a second, independent librados client (as an operator's `rbd` would), and every
figure is read back from the observation; the call counts are RbdStorage's own
(`ObservedStorage.calls`, one per librados/librbd call)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import rados
import rbd

from reconciler.backends.rbd_backend import RbdStorage
from reconciler.identity import META_KIND, META_NAME
from reconciler.lab.testing import LabPool
from reconciler.observe.types import ObservedStorage

pytestmark = pytest.mark.lab
MiB = 1 << 20
HELD_BY = "h1/00000000-0000-4000-8000-00000000000a"  # a running domain's host/uuid


@pytest.fixture
def operator(lab_pool: LabPool) -> Iterator[rados.Ioctx]:
    """An ioctx of a client of its own: an operator working on the pool out of band."""
    cluster = rados.Rados(conffile=lab_pool.info.ceph_conf, rados_id=lab_pool.info.ceph_user)
    cluster.connect(timeout=10)
    io = cluster.open_ioctx(lab_pool.pool)
    yield io
    io.close()
    cluster.shutdown()


@pytest.fixture
def storage(lab_pool: LabPool) -> Iterator[RbdStorage]:
    info = lab_pool.info
    s = RbdStorage(info.ceph_conf, lab_pool.pool, info.ceph_user, timeout=600, threads=8)
    yield s
    s.close()


def _volumes(storage: RbdStorage, names: list[str]) -> None:
    for name in names:
        storage.create(name, 4 * MiB, {META_KIND: "volume", META_NAME: name.removeprefix("vol-")})


def _total(obs: ObservedStorage) -> int:
    return sum(obs.calls.values())


def test_changes_to_held_images_are_seen_by_the_next_pass_which_reads_only_them(
    storage: RbdStorage, operator: rados.Ioctx
) -> None:
    names = [f"vol-h{i}" for i in range(6)]
    _volumes(storage, names)
    held = dict.fromkeys(names, HELD_BY)
    first = storage.observe(held=held)
    assert first.reachable
    assert first.calls["watch"] == len(names)  # held images are watched from the first read
    assert all(first.images[n].watchers == () for n in names)  # our own watch is not a user
    steady = storage.observe(held=held)
    assert "open" not in steady.calls
    assert steady.images == first.images

    with rbd.Image(operator, "vol-h0") as im:
        im.resize(8 * MiB)
    with rbd.Image(operator, "vol-h1") as im:
        im.metadata_set("volctl.note", "edited by hand")
    with rbd.Image(operator, "vol-h2") as im:
        im.metadata_remove(META_NAME)
    rbd.RBD().trash_move(operator, "vol-h3", 0)  # `rbd rm` waits for qemu's watch to go

    after = storage.observe(held=held)
    assert after.images["vol-h0"].size_bytes == 8 * MiB
    assert after.images["vol-h1"].meta["volctl.note"] == "edited by hand"
    assert META_NAME not in after.images["vol-h2"].meta
    assert "vol-h3" not in after.images
    assert after.images["vol-h4"] == first.images["vol-h4"]
    assert after.calls["list"] == 1  # the directory's version moved: listed again
    assert after.calls["open"] == 3  # the three changed images, nothing else


def test_images_in_doubt_show_a_new_watcher_an_edit_and_a_removal_at_once(
    storage: RbdStorage, operator: rados.Ioctx
) -> None:
    _volumes(storage, ["vol-free", "vol-held"])
    held = {"vol-held": HELD_BY}  # vol-free: no running domain holds it
    storage.observe(held=held)
    assert storage.observe(held=held).images["vol-free"].watchers == ()

    client = rbd.Image(operator, "vol-free")  # read-write: registers a watch
    try:
        seen = storage.observe(held=held).images["vol-free"]
        assert len(seen.watchers) == 1
        with rbd.Image(operator, "vol-free") as im:
            im.metadata_set("volctl.note", "x")
        assert storage.observe(held=held).images["vol-free"].meta["volctl.note"] == "x"
    finally:
        client.close()
    assert storage.observe(held=held).images["vol-free"].watchers == ()

    # no watch of ours on an image in doubt: the operator's `rbd rm` is not refused
    rbd.RBD().remove(operator, "vol-free")
    assert "vol-free" not in storage.observe(held=held).images
    # a held image that no running domain holds any more loses our watch at once
    storage.observe(held={})
    rbd.RBD().remove(operator, "vol-held")
    assert storage.observe(held={}).images == {}


@pytest.mark.timeout(1200)  # 110 volumes made the way volctl makes them: ~5 s when quiet
def test_a_steady_pass_costs_the_same_calls_for_10_and_100_unchanged_images(
    storage: RbdStorage,
) -> None:
    def steady(n: int) -> ObservedStorage:
        names = [f"vol-s{i:03d}" for i in range(n)]
        _volumes(storage, names)
        held = dict.fromkeys(names, HELD_BY)
        storage.observe(held=held)  # reads (and watches) the new images
        obs = storage.observe(held=held)
        assert len(obs.images) == n
        return obs

    ten = steady(10)
    hundred = steady(100)
    assert hundred.calls == ten.calls
    assert _total(hundred) == 2  # rbd_directory's version and the id ledger
