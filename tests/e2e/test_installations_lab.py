"""Two volctl installations on the same libvirt hosts leave each other's resources alone.

The reliability campaign found that two controllers sharing hosts destroyed each other's
VMs: a domain was volctl's by the mark alone, so each took the other's for an orphan.  Here
installation A (its own pool, default installation name `<fsid>/<pool>`) and installation
B (another pool, an explicit `installation:` name) run `volctl run` at the same time on the
lab's hosts.  Each converges its own VM; B's spec also names a VM that A already runs on the
pinned host, which B must report blocked rather than take.  Asserted on libvirt itself: the
other installation's domains keep their UUID, their domain id (never restarted), their
persistent XML (never redefined) and keep running, through several passes of both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
import rados
import rbd
import yaml

from reconciler.backends.rbd_backend import RbdStorage
from reconciler.errors import Conflict
from reconciler.identity import META_INSTALLATION
from reconciler.lab.info import LabInfo
from reconciler.lab.proc import free_ports
from reconciler.lab.testing import LabPool, drop_pool, make_pool
from reconciler.loading.config_file import load_config

from .engine_support import Controller, doc, wait_for

HOST = "h1"
TINY = doc("InstanceType", "tiny", {"tid": 91, "cpu": 1, "ram": 128, "disk": 1})


@pytest.fixture
def pool_b(lab: LabInfo, lab_pool: LabPool, tmp_path: Path) -> Iterator[LabPool]:
    """A second installation: its own pool, store and port, and `installation: site-b`."""
    made = make_pool(lab, tmp_path / "b", prefix="tb")
    raw = yaml.safe_load(made.config_path.read_text())
    taken = lab_pool.config.listen  # not bound until A's controller runs: pick another
    port = next(p for p in free_ports(2) if f"127.0.0.1:{p}" != taken)
    raw |= {
        "installation": "site-b",
        "listen": f"127.0.0.1:{port}",
        "api": f"http://127.0.0.1:{port}",
    }
    made.config_path.write_text(yaml.safe_dump(raw))
    try:
        yield LabPool(made.info, made.pool, load_config(str(made.config_path)), made.config_path,
                      made.root)  # fmt: skip
    finally:
        drop_pool(made)


def write_store(lab_pool: LabPool, lab: LabInfo, vms: list[str]) -> None:
    store = Path(lab_pool.config.store)
    (store / "inventory.yaml").write_text(Path(lab.inventory_path).read_text())
    docs = [TINY] + [
        doc("VirtualMachine", n, {"instanceType": "tiny", "image": "lab-base", "host": HOST})
        for n in vms
    ]
    (store / "app.yaml").write_text("---\n".join(docs))


def snapshot(lab: LabInfo, name: str) -> tuple[str, int, str] | None:
    """(uuid, domain id, persistent XML) of a running domain on HOST, else None."""
    uri = next(h.uri for h in lab.hosts if h.name == HOST)
    conn = libvirt.open(uri)
    try:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            return None
        if not dom.isActive():
            return None
        return dom.UUIDString(), dom.ID(), dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()


def passes(run: Controller, n: int) -> None:
    """Wait until `run` has made `n` more passes."""
    start = run.status()["generation"]
    wait_for(lambda: run.status()["generation"] >= start + n, 120, f"{n} more passes")


def test_two_installations_share_hosts_without_touching_each_other(
    lab: LabInfo, lab_pool: LabPool, pool_b: LabPool
) -> None:
    with rados.Rados(conffile=lab.ceph_conf) as cluster:
        name_a = f"{cluster.get_fsid()}/{lab_pool.pool}"  # A's default installation name
    write_store(lab_pool, lab, ["own-a"])
    write_store(pool_b, lab, ["own-b", "own-a"])  # own-a: a name clash with A's VM
    run_a, run_b = Controller(lab_pool), Controller(pool_b)
    run_a.start()
    try:
        a = wait_for(lambda: snapshot(lab, "own-a"), 240, "A's own-a to run")
        assert f'installation="{name_a}"' in a[2] or f"installation='{name_a}'" in a[2]
        run_b.start()
        b = wait_for(lambda: snapshot(lab, "own-b"), 240, "B's own-b to run")
        assert "installation='site-b'" in b[2] or 'installation="site-b"' in b[2]
        t0 = time.monotonic()
        passes(run_a, 3)  # resync every 3 s: A re-plans with B's domain in view,
        passes(run_b, 3)  # and B with A's (its own-a included)
        assert snapshot(lab, "own-a") == a, "B touched A's domain"
        assert snapshot(lab, "own-b") == b, "A touched B's domain"
        clash = run_b.status("vms/own-a")
        assert clash["phase"] in ("Unschedulable", "Blocked"), clash
        assert "already exists" in str(clash["conditions"]), clash
        for run, foreign in ((run_a, "own-b"), (run_b, "own-a")):
            hosts = {h["name"]: h for h in run.status("hosts")["items"]}
            assert hosts[HOST]["domainsForeign"] >= 1, (foreign, hosts[HOST])
        assert "own-b" not in {v["name"] for v in run_a.status("vms")["items"]}
        print(f"both installations held for {time.monotonic() - t0:.1f} s of passes")
    finally:
        rc_b, rc_a = run_b.stop(), run_a.stop()
        print(run_a.log()[-1500:], run_b.log()[-1500:])
    assert (rc_a, rc_b) == (0, 0)


def test_images_of_another_installation_in_a_shared_pool_are_foreign(
    lab: LabInfo, lab_pool: LabPool
) -> None:
    """Under explicit names two installations may share a pool: the image-meta says whose."""
    conf, pool, user = lab.ceph_conf, lab_pool.pool, lab.ceph_user
    a, b, plain = (RbdStorage(conf, pool, user, installation=n) for n in ("site-a", "site-b", None))
    try:
        with rados.Rados(conffile=conf) as cluster:
            default = f"{cluster.get_fsid()}/{pool}"
        assert plain.installation().name == default
        assert b.installation().name == "site-b"
        a.create("vol-x", 4 << 20, {"volctl.kind": "volume", "volctl.name": "x"})
        seen = b.observe().images["vol-x"]
        assert seen.meta[META_INSTALLATION] == "site-a"
        assert not seen.ours
        assert a.observe().images["vol-x"].ours
        for action in (
            lambda: b.remove("vol-x"),
            lambda: b.resize("vol-x", 8 << 20),
            lambda: b.set_meta("vol-x", {"volctl.reclaim-policy": "Delete"}),
            lambda: b.create("vol-x", 4 << 20, {}),
        ):
            with pytest.raises(Conflict, match="installation 'site-a'"):
                action()
        with (
            rados.Rados(conffile=conf) as cluster,
            cluster.open_ioctx(pool) as io,
            rbd.Image(io, "vol-x", read_only=True) as im,
        ):
            assert im.size() == 4 << 20
            assert "volctl.reclaim-policy" not in dict(im.metadata_list())
    finally:
        for s in (a, b, plain):
            s.close()
