"""`volctl lab up --netns --transport ssh`: hosts reached as the seed reached them, over SSH.

A throwaway 2-host lab whose Host URIs are `qemu+ssh://root@ADDR/system` (real sshd in each
host's namespaces, the lab's own key and known_hosts).  volctl converges a VM and hot-plugs
a volume through those URIs, and the VM's image is an `Image.source.ssh`: the lab's base
image file, served by h1's sshd and streamed into RBD.  Everything is asserted on libvirt
(over SSH) and on Ceph (the imported bytes against the file), and nothing may appear in the
user's ~/.ssh.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import libvirt
import pytest
import rbd

from reconciler.backends.rbd_backend import RbdStorage
from reconciler.errors import Terminal
from reconciler.lab.lab import Lab
from reconciler.lab.libvirt_host import with_timeout
from reconciler.lab.proc import alive, free_ports
from reconciler.lab.sshd import LabSsh
from reconciler.lab.testing import (
    LabPool,
    admin_cluster,
    drop_pool,
    make_pool,
    session_lab_dir,
    watchers,
)
from reconciler.payload import SshFile

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]


def _hostname(uri: str, timeout: float = 30) -> str:
    def probe() -> str:
        conn = libvirt.open(uri)
        try:
            return str(conn.getHostname())
        finally:
            conn.close()

    return with_timeout(probe, timeout, uri)


def _home_ssh() -> list[tuple[str, float]]:
    ssh = Path.home() / ".ssh"
    return sorted((str(p), p.stat().st_mtime) for p in ssh.rglob("*")) if ssh.exists() else []


def _specs(store: Path, inventory: Path, image_source: dict[str, object]) -> None:
    (store / "inventory.yaml").write_text(inventory.read_text())
    docs = [
        {"kind": "Image", "metadata": {"name": "from-ssh"},
         "spec": {"id": 7, "source": {"ssh": image_source}}},
        {"kind": "InstanceType", "metadata": {"name": "tiny"},
         "spec": {"tid": 9, "cpu": 1, "ram": 128, "disk": 1}},
        {"kind": "VirtualMachine", "metadata": {"name": "over-ssh"},
         "spec": {"instanceType": "tiny", "image": "from-ssh"}},
        {"kind": "Volume", "metadata": {"name": "data-ssh"},
         "spec": {"size": 1, "reclaimPolicy": "Delete"}},
        {"kind": "VolumeAttachment", "metadata": {"name": "data-ssh-on-vm"},
         "spec": {"volume": "data-ssh", "vm": "over-ssh"}},
    ]  # fmt: skip
    text = "---\n".join(json.dumps({"apiVersion": "volctl.io/v1", **d}) + "\n" for d in docs)
    (store / "app.yaml").write_text(text)


def _bad_ssh_sources(pool: LabPool, served: dict[str, str], tmp_path: Path) -> None:
    """A missing file, a qcow2 file and an unknown host key: each a clear terminal error,
    and no image left at the name."""
    info = pool.info
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2), "16M"], check=True)
    base = SshFile(served["host"], "/", None, served["identityFile"], served["knownHostsFile"])
    storage = RbdStorage(info.ceph_conf, pool.pool, info.ceph_user, timeout=60)
    try:
        for source, why in (
            (replace(base, path="/nonexistent/seed.img"), "No such file"),
            (replace(base, path=str(qcow2)), "is qcow2: an ssh source must be a raw image"),
            (replace(base, path=str(qcow2), known_hosts_file="/dev/null"), "Host key verif"),
        ):
            with pytest.raises(Terminal, match=why):
                storage.import_image("img-bad", source, {})
            assert "img-bad" not in storage.observe().images
    finally:
        storage.close()


def test_ssh_lab_converges_a_vm_and_hot_plugs_a_volume(tmp_path: Path) -> None:
    before_home = _home_ssh()
    lab = Lab(session_lab_dir(Path("/var/tmp"), "volctl-ssh-lab"))
    lab.down(quiet=True)
    v1, v2 = free_ports(2)
    info = lab.up(2, mon_port=v1, mon_v2_port=v2, netns=True, transport="ssh")
    client = LabSsh(Path(info.dir))
    try:
        net = lab.net()
        assert net is not None
        for host in info.hosts:
            addr = net.host_ip(host.name)
            assert host.uri == (
                f"qemu+ssh://root@{addr}/system?keyfile={client.key}"
                f"&command={client.command}&no_tty=1"
            )
            assert _hostname(host.uri) == host.name  # each URI reaches its own host
            assert f"{addr} ssh-ed25519 " in client.known_hosts.read_text()
            # host keys are checked strictly: without the lab's known_hosts, ssh refuses
            refused = subprocess.run(
                [*client.argv(), "-o", "UserKnownHostsFile=/dev/null", f"root@{addr}", "true"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert refused.returncode == 255
            assert "Host key verification failed" in refused.stderr
        sshd = lab.sshd("h1")
        assert sshd is not None
        assert sshd.pid()
        assert "Accepted publickey for root" in sshd.log.read_text()

        pool = make_pool(info, tmp_path / "pool")
        try:
            served = {
                "host": f"root@{net.host_ip('h1')}", "path": info.base_image_file,
                "identityFile": str(client.key), "knownHostsFile": str(client.known_hosts),
            }  # fmt: skip
            _specs(Path(pool.config.store), Path(info.inventory_path), served)
            once = subprocess.run(
                [sys.executable, "-m", "reconciler.cli.main", "--config", str(pool.config_path),
                 "run", "--once", "--no-api"],
                capture_output=True, text=True, timeout=400, cwd=REPO, check=False,
            )  # fmt: skip
            assert once.returncode == 0, once.stdout + once.stderr[-3000:]
            # the world, over the SSH URIs: one running domain with the volume in its live XML
            found = []
            for host in info.hosts:
                conn = with_timeout(lambda uri=host.uri: libvirt.open(uri), 30, host.uri)
                try:
                    for dom in conn.listAllDomains():
                        if dom.name() == "over-ssh":
                            found.append((host.name, bool(dom.isActive()), dom.XMLDesc(0)))
                finally:
                    conn.close()
            assert len(found) == 1, found
            _host, active, xml = found[0]
            assert active
            sources = [s.get("name") for s in ET.fromstring(xml).iter("source")]
            volume = next(s for s in sources if s and s.endswith("vol-data-ssh"))
            assert watchers(info, volume)  # qemu (in the host's netns) opened it via the relay
            # the image came over SSH byte for byte, and the VM's root disk is a clone of it
            file_bytes = Path(info.base_image_file).read_bytes()
            with (
                admin_cluster(info).connect(timeout=30) as cluster,
                cluster.open_ioctx(pool.pool) as io,
                rbd.Image(io, "img-from-ssh", snapshot="volctl-base", read_only=True) as img,
            ):
                assert img.size() == len(file_bytes)
                got = b"".join(
                    img.read(off, min(4 << 20, len(file_bytes) - off))
                    for off in range(0, len(file_bytes), 4 << 20)
                )
            assert hashlib.sha256(got).digest() == hashlib.sha256(file_bytes).digest()
            assert any(s and s.endswith("vm-over-ssh-root") for s in sources)
            assert "Accepted publickey for root" in sshd.log.read_text()  # h1 served the file
            _bad_ssh_sources(pool, served, tmp_path)
        finally:
            drop_pool(pool)
        sshd_pid = sshd.pid()
    finally:
        lab.down()
    assert sshd_pid is not None
    assert not alive(sshd_pid)
    assert _home_ssh() == before_home  # the user's ~/.ssh was never touched
