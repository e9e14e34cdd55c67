"""Helpers for test suites that run on the real lab (used by tests/conftest.py and tests/lab).

Why in the package: the session fixtures, the lab's own smoke tests and the end-to-end tests
of other areas all need the same few things: a fresh RBD pool and a volctl config for it per
test, hosts with no leftover domains, a guest domain XML that boots the base image from an
RBD clone, Ceph's watchers of an image, and a way to wait for a line on a serial console.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import libvirt
import rbd

from reconciler.config import Config
from reconciler.lab.ceph import CephCluster, create_pool, delete_pool, wait_writable
from reconciler.lab.info import LabInfo
from reconciler.lab.inventory import config_doc, write_config
from reconciler.lab.libvirt_host import with_timeout
from reconciler.lab.proc import LabError, alive, free_ports
from reconciler.loading.config_file import load_config

LIVE_CONFIG = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG


@dataclass(frozen=True)
class LabPool:
    """A fresh RBD pool in the lab, and a volctl config whose ceph.pool is that pool."""

    info: LabInfo
    pool: str
    config: Config
    config_path: Path
    root: Path  # holds this config's store/, state/ and consoles/


def session_lab_dir(base: Path, name: str) -> Path:
    """BASE/NAME-<pid>: a lab dir owned by this process.

    Several test sessions may run at once on one machine (CI jobs, developers); each gets its
    own lab.  Labs of sessions whose process is gone are torn down here first."""
    from reconciler.lab.lab import Lab  # noqa: PLC0415 - lab imports this module's neighbours

    for stale in base.glob(f"{name}-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            with contextlib.suppress(LabError):
                Lab(stale).down(quiet=True)
    return base / f"{name}-{os.getpid()}"


def _cluster(info: LabInfo) -> CephCluster:
    """The lab's Ceph as volctl's own user (client.volctl): what the tests' RBD helpers use."""
    return CephCluster(Path(info.ceph_conf).parent, user=info.ceph_user)


def admin_cluster(info: LabInfo) -> CephCluster:
    """The lab's Ceph as client.admin: pools and users are the operator's job, not volctl's."""
    return CephCluster(Path(info.ceph_conf).parent, user=info.admin_user)


def make_pool(info: LabInfo, root: Path, prefix: str = "t") -> LabPool:
    """Create pool PREFIX-<random>, and ROOT/volctl.yaml pointing at it (free API port)."""
    pool = f"{prefix}-{uuid.uuid4().hex[:10]}"
    with admin_cluster(info).connect(timeout=30) as cluster:
        create_pool(cluster, pool)
        wait_writable(cluster, pool, timeout=30)
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("store", "state", "consoles"):
        (root / sub).mkdir(exist_ok=True)
    (port,) = free_ports(1)
    path = root / "volctl.yaml"
    write_config(
        path,
        config_doc(
            lab_dir=Path(info.dir),
            ceph_conf=Path(info.ceph_conf),
            pool=pool,
            user=info.ceph_user,
            secret_uuid=info.secret_uuid,
            monitors=info.monitors,
            listen=f"127.0.0.1:{port}",
            state_root=root,
        ),
    )
    return LabPool(info, pool, load_config(str(path)), path, root)


def drop_pool(lab_pool: LabPool) -> None:
    """Remove the domains with disks in the pool from every lab host, then the pool."""
    clean_hosts(lab_pool.info, pool=lab_pool.pool)
    with admin_cluster(lab_pool.info).connect(timeout=30) as cluster:
        delete_pool(cluster, lab_pool.pool)


def clean_hosts(info: LabInfo, pool: str | None = None) -> None:
    """Destroy and undefine the domains on every lab host: all of them, or with POOL only
    those with a disk in that pool (so other tests' guests elsewhere are left alone)."""
    needle = f"name='{pool}/" if pool else ""
    for host in info.hosts:

        def clean(uri: str = host.uri) -> None:
            conn = libvirt.open(uri)
            try:
                for dom in conn.listAllDomains():
                    if needle and needle not in dom.XMLDesc(0) + dom.XMLDesc(
                        libvirt.VIR_DOMAIN_XML_INACTIVE
                    ):
                        continue
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            finally:
                conn.close()

        with_timeout(clean, 60, f"clean {host.name}")


def clone_base(info: LabInfo, pool: str, name: str, size_gib: int | None = None) -> str:
    """A copy-on-write clone of the lab's base image as POOL/NAME; returns 'pool/name'."""
    parent_pool, rest = info.base_image.split("/", 1)
    parent, snap = rest.split("@", 1)
    with (
        _cluster(info).connect(timeout=30) as cluster,
        cluster.open_ioctx(parent_pool) as pio,
        cluster.open_ioctx(pool) as cio,
    ):
        rbd.RBD().clone(pio, parent, snap, cio, name, features=rbd.RBD_FEATURE_LAYERING)
        if size_gib:
            with rbd.Image(cio, name) as img:
                img.resize(size_gib * 1024**3)
    return f"{pool}/{name}"


def create_volume(info: LabInfo, pool: str, name: str, size_mib: int = 64) -> str:
    with _cluster(info).connect(timeout=30) as cluster, cluster.open_ioctx(pool) as ioctx:
        rbd.RBD().create(ioctx, name, size_mib * 1024**2)
    return f"{pool}/{name}"


def watchers(info: LabInfo, image: str) -> list[str]:
    """Addresses of the clients that have IMAGE ('pool/name') open (qemu, for attached disks)."""
    pool, name = image.split("/", 1)
    with (
        _cluster(info).connect(timeout=30) as cluster,
        cluster.open_ioctx(pool) as ioctx,
        rbd.Image(ioctx, name, read_only=True) as img,
    ):
        return [str(w["addr"]) for w in img.watchers_list()]


def rbd_disk_xml(
    info: LabInfo, image: str, dev: str, *, serial: str | None = None, boot: bool = False
) -> str:
    """A virtio network disk on IMAGE ('pool/name') with cephx via the lab's secret."""
    host, port = info.monitors[0]
    extra = (f"<serial>{serial}</serial>" if serial else "") + ("<boot order='1'/>" if boot else "")
    return (
        "<disk type='network' device='disk'>"
        "<driver name='qemu' type='raw' cache='none'/>"
        f"<auth username='{info.ceph_user}'><secret type='ceph' uuid='{info.secret_uuid}'/></auth>"
        f"<source protocol='rbd' name='{image}'><host name='{host}' port='{port}'/></source>"
        f"<target dev='{dev}' bus='virtio'/>{extra}</disk>"
    )


def guest_xml(
    info: LabInfo, name: str, root_image: str, console: Path, memory_mib: int = 256
) -> str:
    """A plain TCG domain that boots ROOT_IMAGE (a clone of the base) from its own disk."""
    return (
        f"<domain type='qemu'><name>{name}</name>"
        f"<memory unit='MiB'>{memory_mib}</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        "<features><acpi/></features><on_poweroff>destroy</on_poweroff>"
        f"<devices>{rbd_disk_xml(info, root_image, 'vda', boot=True)}"
        f"<serial type='file'><source path='{console}'/><target port='0'/></serial>"
        f"<console type='file'><source path='{console}'/><target type='serial' port='0'/>"
        "</console><video><model type='none'/></video><memballoon model='none'/>"
        "</devices></domain>"
    )


def wait_console(path: Path, needle: str, timeout: float, start: int = 0) -> str:
    """Wait until the console log at PATH contains NEEDLE after byte offset START.

    Returns the first line containing it; raises TimeoutError with the log's tail."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_bytes()[start:].decode(errors="replace")
            for line in text.splitlines():
                if needle in line:
                    return line
        time.sleep(0.1)
    tail = "\n".join(text.splitlines()[-15:])
    raise TimeoutError(f"{path}: no {needle!r} within {timeout:.0f} s; tail:\n{tail}")
