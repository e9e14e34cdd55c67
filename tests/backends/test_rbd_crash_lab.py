"""A crash between any two steps of creating an RBD image, on the lab's real Ceph.

`RbdStorage` creates every image as `volctl-tmp.<final>.<nonce>`, marks it, then renames it.
These tests run the steps one at a time (`_scratch_create`/`_scratch_clone`, `_mark`,
`_publish`) and "crash" between them by simply not running the rest, then play the next
pass: nothing unmarked is ever at a managed name, the next call creates the image properly,
and the debris is removed once it is older than the grace period - never while someone has
it open, never anything outside the reserved prefix.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import rados
import rbd

from reconciler.backends.rbd_backend import RbdStorage
from reconciler.identity import (
    BASE_SNAPSHOT,
    MANAGED_BY,
    META_KIND,
    META_MANAGED_BY,
    META_NAME,
    TMP_PREFIX,
)
from reconciler.lab.testing import LabPool

pytestmark = pytest.mark.lab
MiB = 1 << 20
VOL_META = {META_KIND: "volume", META_NAME: "x"}


@pytest.fixture
def ioctx(lab_pool: LabPool) -> Iterator[rados.Ioctx]:
    cluster = rados.Rados(conffile=lab_pool.info.ceph_conf, rados_id=lab_pool.info.ceph_user)
    cluster.connect(timeout=10)
    io = cluster.open_ioctx(lab_pool.pool)
    yield io
    io.close()
    cluster.shutdown()


def _storage(lab_pool: LabPool, grace: float) -> RbdStorage:
    info = lab_pool.info
    return RbdStorage(info.ceph_conf, lab_pool.pool, info.ceph_user, timeout=30, tmp_grace=grace)


@pytest.fixture
def patient(lab_pool: LabPool) -> Iterator[RbdStorage]:
    """Debris is young for an hour: nothing is swept (an in-flight creation elsewhere)."""
    s = _storage(lab_pool, 3600.0)
    yield s
    s.close()


@pytest.fixture
def sweeper(lab_pool: LabPool) -> Iterator[RbdStorage]:
    """The grace period has passed: debris is removed."""
    s = _storage(lab_pool, 0.0)
    yield s
    s.close()


def names(io: rados.Ioctx) -> set[str]:
    return {str(n) for n in rbd.RBD().list(io)}


def scratch(io: rados.Ioctx) -> set[str]:
    return {n for n in names(io) if n.startswith(TMP_PREFIX)}


def meta_of(io: rados.Ioctx, name: str) -> dict[str, str]:
    with rbd.Image(io, name, read_only=True) as im:
        return {str(k): str(v) for k, v in im.metadata_list()}


@pytest.mark.parametrize("crash_after", ["create", "mark"])
def test_crash_while_creating_a_volume_is_repaired_by_the_next_pass(
    patient: RbdStorage, sweeper: RbdStorage, ioctx: rados.Ioctx, crash_after: str
) -> None:
    s = patient

    def steps(io: rados.Ioctx) -> str:
        tmp = s._scratch_create(io, "vol-x", 8 * MiB)
        if crash_after == "mark":
            s._mark(io, tmp, VOL_META)
        return tmp  # killed here: no rename

    tmp = s._call("crash", steps)
    assert names(ioctx) == {tmp}
    assert tmp.startswith(f"{TMP_PREFIX}vol-x.")
    assert (META_MANAGED_BY in meta_of(ioctx, tmp)) is (crash_after == "mark")
    obs = s.observe()
    assert obs.reachable
    assert obs.images == {}  # scratch is neither a volume nor foreign
    assert tmp in names(ioctx)  # young: could be someone's creation in flight

    s.create("vol-x", 8 * MiB, VOL_META)  # the next pass
    assert meta_of(ioctx, "vol-x")[META_MANAGED_BY] == MANAGED_BY
    assert meta_of(ioctx, "vol-x")[META_NAME] == "x"
    assert set(s.observe().images) == {"vol-x"}
    assert s.observe().images["vol-x"].ours

    assert set(sweeper.observe().images) == {"vol-x"}  # the grace period is over: swept
    assert names(ioctx) == {"vol-x"}


def test_crash_while_cloning_a_root_is_repaired(
    patient: RbdStorage, sweeper: RbdStorage, ioctx: rados.Ioctx, lab_pool: LabPool
) -> None:
    parent = lab_pool.info.base_image
    meta = {META_KIND: "root", META_NAME: "web"}
    tmp = patient._call("crash", lambda io: patient._scratch_clone(io, parent, "vm-web-root"))
    assert names(ioctx) == {tmp}
    assert "vm-web-root" not in patient.observe().images
    # the next pass: leftovers of this name are removed first once past the grace period
    sweeper.clone(parent, "vm-web-root", 64 * MiB, meta)
    assert names(ioctx) == {"vm-web-root"}
    img = patient.observe().images["vm-web-root"]
    assert img.ours
    assert img.parent == parent
    assert img.size_bytes >= 64 * MiB


def test_crash_after_an_import_wrote_everything_but_before_the_rename(
    patient: RbdStorage, sweeper: RbdStorage, ioctx: rados.Ioctx
) -> None:
    s = patient

    def steps(io: rados.Ioctx) -> str:
        tmp = s._scratch_create(io, "img-deb", 4 * MiB)
        s._mark(io, tmp, {META_KIND: "image", META_NAME: "deb"})
        with rbd.Image(io, tmp) as im:
            im.write(b"volctl" * 10, 0)
            im.create_snap(BASE_SNAPSHOT)
            im.protect_snap(BASE_SNAPSHOT)
        return tmp

    tmp = s._call("crash", steps)
    assert names(ioctx) == {tmp}
    assert "img-deb" not in s.observe().images
    assert sweeper.observe().images == {}  # protected snapshot and all: removed
    assert names(ioctx) == set()


def test_only_unwatched_reserved_names_are_swept(sweeper: RbdStorage, ioctx: rados.Ioctx) -> None:
    lookalikes = ["volctl-tmp-x", "volctl-tmp.nonce-less", "vol-y", "tmpx"]
    for n in lookalikes:  # foreign images outside the reserved namespace
        rbd.RBD().create(ioctx, n, MiB, old_format=False)
    busy = f"{TMP_PREFIX}vol-z.0000beef"
    rbd.RBD().create(ioctx, busy, MiB, old_format=False)
    with rbd.Image(ioctx, busy):  # open read-write: a creator is still at work
        obs = sweeper.observe()
        assert busy in names(ioctx)
    assert set(obs.images) == set(lookalikes)
    assert all(not i.ours for i in obs.images.values())
    sweeper.observe()
    assert names(ioctx) == set(lookalikes)
