"""RbdStorage against the lab's real Ceph cluster: every assertion reads the cluster back.

Each test gets a fresh pool (`lab_pool`), so tests cannot see each other's images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import rados
import rbd

from reconciler.backends.rbd_backend import RbdStorage
from reconciler.errors import Conflict, NotFound, Transient
from reconciler.identity import BASE_SNAPSHOT, MANAGED_BY, META_KIND, META_MANAGED_BY
from reconciler.lab.testing import LabPool
from reconciler.payload import LocalFile

pytestmark = pytest.mark.lab
MiB = 1 << 20


@pytest.fixture
def ioctx(lab_pool: LabPool) -> Iterator[rados.Ioctx]:
    cluster = rados.Rados(conffile=lab_pool.info.ceph_conf, rados_id=lab_pool.info.ceph_user)
    cluster.connect(timeout=10)
    io = cluster.open_ioctx(lab_pool.pool)
    yield io
    io.close()
    cluster.shutdown()


@pytest.fixture
def prefix() -> str:
    return "t-"


@pytest.fixture
def storage(lab_pool: LabPool) -> Iterator[RbdStorage]:
    info = lab_pool.info
    s = RbdStorage(info.ceph_conf, lab_pool.pool, info.ceph_user, timeout=30)
    yield s
    s.close()


def _raw_file(tmp_path: Path) -> Path:
    path = tmp_path / "img.raw"
    with path.open("wb") as f:
        f.truncate(12 * MiB)
        f.seek(0)
        f.write(b"volctl-head" * 100)
        f.seek(9 * MiB + 123)
        f.write(b"volctl-tail")
    return path


def test_import_is_complete_and_idempotent(
    storage: RbdStorage, ioctx: rados.Ioctx, prefix: str, tmp_path: Path
) -> None:
    src = _raw_file(tmp_path)
    name = f"{prefix}img"
    storage.import_image(name, LocalFile(str(src)), {META_KIND: "image"})
    with rbd.Image(ioctx, name, read_only=True) as im:
        first_id = im.id()
        assert im.size() == 12 * MiB
        assert im.read(0, 1100) == src.read_bytes()[:1100]
        assert im.read(9 * MiB + 123, 11) == b"volctl-tail"
        assert im.is_protected_snap(BASE_SNAPSHOT)
        assert dict(im.metadata_list())[META_MANAGED_BY] == MANAGED_BY
    storage.import_image(name, LocalFile(str(src)), {META_KIND: "image"})
    with rbd.Image(ioctx, name, read_only=True) as im:
        assert im.id() == first_id  # not re-imported
    img = storage.observe().images[name]
    assert img.ours
    assert img.snapshots == (BASE_SNAPSHOT,)
    assert img.protected_snapshots == (BASE_SNAPSHOT,)


def test_partial_import_from_a_crash_is_redone(
    storage: RbdStorage, ioctx: rados.Ioctx, prefix: str, tmp_path: Path
) -> None:
    src = _raw_file(tmp_path)
    name = f"{prefix}img"
    rbd.RBD().create(ioctx, name, MiB)  # crashed after create + mark, before the snapshot
    with rbd.Image(ioctx, name) as im:
        im.metadata_set(META_MANAGED_BY, MANAGED_BY)
    storage.import_image(name, LocalFile(str(src)), {})
    with rbd.Image(ioctx, name, read_only=True) as im:
        assert im.size() == 12 * MiB
        assert im.read(9 * MiB + 123, 11) == b"volctl-tail"
        assert im.is_protected_snap(BASE_SNAPSHOT)


def test_clone_grow_meta_idempotent_and_parent_checked(
    storage: RbdStorage, ioctx: rados.Ioctx, prefix: str, tmp_path: Path
) -> None:
    base = f"{prefix}base"
    storage.import_image(base, LocalFile(str(_raw_file(tmp_path))), {})
    parent = f"{storage.pool}/{base}@{BASE_SNAPSHOT}"
    child = f"{prefix}root"
    storage.clone(parent, child, 64 * MiB, {META_KIND: "root"})
    storage.clone(parent, child, 64 * MiB, {META_KIND: "root"})
    with rbd.Image(ioctx, child, read_only=True) as im:
        assert im.size() == 64 * MiB
        assert im.read(9 * MiB + 123, 11) == b"volctl-tail"  # copy-on-write from the parent
        assert dict(im.metadata_list())[META_KIND] == "root"
    obs = storage.observe(external_snapshots=(parent, f"{storage.pool}/{prefix}nope@x"))
    assert obs.images[child].parent == parent
    assert obs.external_snapshots == {parent: True, f"{storage.pool}/{prefix}nope@x": False}
    other = f"{prefix}other"
    storage.import_image(other, LocalFile(str(_raw_file(tmp_path))), {})
    with pytest.raises(Conflict):  # same name, different parent
        storage.clone(f"{storage.pool}/{other}@{BASE_SNAPSHOT}", child, 64 * MiB, {})
    with pytest.raises(Conflict):  # the base still has a clone
        storage.remove(base)
    storage.remove(child)
    storage.remove(base)
    assert base not in rbd.RBD().list(ioctx)


def test_create_resize_grow_only_set_meta_remove(
    storage: RbdStorage, ioctx: rados.Ioctx, prefix: str
) -> None:
    name = f"{prefix}vol"
    storage.create(name, 4 * MiB, {META_KIND: "volume"})
    storage.create(name, 4 * MiB, {META_KIND: "volume"})
    storage.resize(name, 8 * MiB)
    storage.resize(name, 2 * MiB)  # never shrinks
    storage.set_meta(name, {"volctl.reclaim-policy": "Delete"})
    img = storage.observe().images[name]
    assert img.size_bytes == 8 * MiB
    assert img.meta[META_KIND] == "volume"
    assert img.meta["volctl.reclaim-policy"] == "Delete"
    storage.remove(name)
    assert name not in rbd.RBD().list(ioctx)
    with pytest.raises(NotFound):
        storage.remove(name)


def test_foreign_image_is_never_changed(
    storage: RbdStorage, ioctx: rados.Ioctx, prefix: str, tmp_path: Path
) -> None:
    name = f"{prefix}foreign"
    rbd.RBD().create(ioctx, name, 4 * MiB)
    for action in (
        lambda: storage.create(name, 4 * MiB, {}),
        lambda: storage.resize(name, 8 * MiB),
        lambda: storage.set_meta(name, {META_MANAGED_BY: MANAGED_BY}),
        lambda: storage.remove(name),
        lambda: storage.import_image(name, LocalFile(str(_raw_file(tmp_path))), {}),
    ):
        with pytest.raises(Conflict):
            action()
    with rbd.Image(ioctx, name, read_only=True) as im:
        assert im.size() == 4 * MiB
        assert list(im.metadata_list()) == []
    assert not storage.observe().images[name].ours


def test_watched_image_is_not_removed(storage: RbdStorage, ioctx: rados.Ioctx, prefix: str) -> None:
    name = f"{prefix}busy"
    storage.create(name, 4 * MiB, {})
    holder = rbd.Image(ioctx, name)  # a read-write open registers a watch, like qemu's
    try:
        assert storage.observe().images[name].watchers
        with pytest.raises(Transient):
            storage.remove(name)
    finally:
        holder.close()
    assert storage.observe().images[name].watchers == ()
    storage.remove(name)


def test_unreachable_cluster_is_reported_not_empty(tmp_path: Path) -> None:
    conf = tmp_path / "dead.conf"
    conf.write_text("[global]\nmon host = 127.0.0.1:9\nauth client required = none\n")
    s = RbdStorage(str(conf), connect_timeout=2, timeout=5)
    try:
        obs = s.observe()
        assert not obs.reachable
        assert obs.reason
        assert obs.images == {}
    finally:
        s.close()
