"""Smoke tests on the real lab: hosts, Ceph, secrets, a guest booting from an RBD clone,
live virtio hot-plug of an RBD volume, and a libvirtd restart under a running guest."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt
import pytest
import rados

from reconciler.config import load_config
from reconciler.lab.guest_image import BLOCKS_PREFIX, READY_LINE
from reconciler.lab.info import LabInfo
from reconciler.lab.lab import Lab
from reconciler.lab.proc import alive
from reconciler.lab.testing import (
    LIVE_CONFIG,
    LabPool,
    clone_base,
    create_volume,
    drop_pool,
    guest_xml,
    make_pool,
    rbd_disk_xml,
    wait_console,
    watchers,
)
from reconciler.loading import load_paths

BOOT_TIMEOUT = 400  # TCG on 2 shared cores: 8-15 s when idle, minutes at load average 40
# tests that boot a guest get more than pytest's default 300 s for the same reason
boots = pytest.mark.timeout(600)


def _boot(
    lab: LabInfo, pool: LabPool, host_index: int, name: str
) -> tuple[libvirt.virDomain, Path]:
    root = clone_base(lab, pool.pool, f"{name}-root", size_gib=1)
    console = pool.root / "consoles" / f"{name}.log"
    conn = libvirt.open(lab.hosts[host_index].uri)
    dom = conn.defineXML(guest_xml(lab, name, root, console))
    dom.create()
    return dom, console


def test_lab_json_matches_the_running_world(lab: LabInfo) -> None:
    hostnames, uuids = set(), set()
    for host in Lab(lab.dir).info().hosts:  # fresh: a daemon restart changes the pid
        assert alive(host.pid)
        conn = libvirt.open(host.uri)
        try:
            hostnames.add(conn.getHostname())
            uuids.add(conn.getCapabilities().split("<uuid>")[1].split("</uuid>")[0])
            secret = conn.secretLookupByUUIDString(lab.secret_uuid)
            assert "ephemeral='no'" in secret.XMLDesc()
            assert "private='yes'" in secret.XMLDesc()
            with pytest.raises(libvirt.libvirtError):
                secret.value()  # private: the key cannot be read back
        finally:
            conn.close()
    assert hostnames == {h.name for h in lab.hosts}
    assert len(uuids) == len(lab.hosts)

    cfg = load_config(lab.config_path)
    assert cfg.ceph.secret_uuid == lab.secret_uuid
    assert cfg.ceph.conf == lab.ceph_conf
    assert cfg.ceph.monitors == lab.monitors
    state = load_paths([lab.inventory_path])
    assert sorted(state.hosts) == sorted(h.name for h in lab.hosts)
    assert {h.uri for h in state.hosts.values()} == {h.uri for h in lab.hosts}
    assert state.images["lab-base"].source.rbd == lab.base_image
    assert {t.tid: (t.cpu, t.ram, t.disk) for t in state.instance_types.values()} == {
        1: (1, 512, 1),
        2: (2, 1024, 2),
        3: (4, 2048, 3),
    }
    # the keys are in the keyrings only, never in what the lab hands out
    for user in (lab.admin_user, lab.ceph_user):
        key_line = next(
            line
            for line in Path(lab.ceph_conf).with_name(f"ceph.client.{user}.keyring").read_text()
            .splitlines() if "key =" in line
        )  # fmt: skip
        key = key_line.split("=", 1)[1].strip()
        for path in (lab.config_path, lab.inventory_path, Path(lab.dir) / "lab.json"):
            assert key not in Path(path).read_text()


@boots
def test_guest_boots_from_an_rbd_clone_on_every_host(lab: LabInfo, lab_pool: LabPool) -> None:
    booted = [_boot(lab, lab_pool, i, f"boot-{h.name}") for i, h in enumerate(lab.hosts)]
    with ThreadPoolExecutor(len(booted)) as pool:
        lines = list(pool.map(lambda b: wait_console(b[1], READY_LINE, BOOT_TIMEOUT), booted))
    assert all(READY_LINE in line for line in lines)
    for dom, console in booted:
        assert dom.isActive()
        # the root disk is the only block device the guest sees
        blocks = wait_console(console, BLOCKS_PREFIX, 10)
        assert blocks.split(BLOCKS_PREFIX)[1].split() == ["vda"]


@boots
def test_hot_plug_rbd_volume_live_and_release_it(lab: LabInfo, lab_pool: LabPool) -> None:
    dom, console = _boot(lab, lab_pool, 0, "hotplug")
    wait_console(console, READY_LINE, BOOT_TIMEOUT)
    volume = create_volume(lab, lab_pool.pool, "vol-hot")
    assert watchers(lab, volume) == []
    disk = rbd_disk_xml(lab, volume, "vdb", serial="vol-hot-serial")
    mark = console.stat().st_size

    dom.attachDeviceFlags(disk, LIVE_CONFIG)
    assert volume in dom.XMLDesc(0)
    assert "vol-hot-serial" in dom.XMLDesc(0)
    assert len(watchers(lab, volume)) == 1
    line = wait_console(console, "vol-hot-serial", 30, start=mark)
    assert line.startswith(BLOCKS_PREFIX)

    mark = console.stat().st_size
    dom.detachDeviceFlags(disk, LIVE_CONFIG)
    deadline = time.monotonic() + 20
    while volume in dom.XMLDesc(0) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert volume not in dom.XMLDesc(0)
    assert volume not in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    while watchers(lab, volume) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert watchers(lab, volume) == []
    after = wait_console(console, BLOCKS_PREFIX, 30, start=mark)
    assert "vol-hot-serial" not in after

    # destroy is prompt because the host's reaper reaps qemu at once
    t0 = time.monotonic()
    dom.destroy()
    assert time.monotonic() - t0 < 1.5


@boots
def test_guest_survives_a_libvirtd_restart(lab: LabInfo, lab_pool: LabPool) -> None:
    host = lab.hosts[-1]
    dom, console = _boot(lab, lab_pool, len(lab.hosts) - 1, "survivor")
    uuid = dom.UUIDString()
    wait_console(console, READY_LINE, BOOT_TIMEOUT)
    ctl = Lab(lab.dir)
    qemu_pids = ctl.host(host.name).qemu_pids()
    assert len(qemu_pids) == 1

    ctl.stop_host_daemon(host.name)
    assert not alive(host.pid)
    with pytest.raises(libvirt.libvirtError):
        libvirt.open(host.uri)
    assert alive(qemu_pids[0])

    new = ctl.start_host_daemon(host.name)
    assert new.pid != host.pid
    assert alive(new.pid)
    conn = libvirt.open(host.uri)
    again = conn.lookupByUUIDString(uuid)
    assert again.isActive()
    assert ctl.host(host.name).qemu_pids() == qemu_pids
    assert Lab(lab.dir).info().hosts[-1].pid == new.pid

    # the reconnected daemon still drives the running guest: hot-plug reaches the guest
    volume = create_volume(lab, lab_pool.pool, "vol-after-restart")
    mark = console.stat().st_size
    again.attachDeviceFlags(rbd_disk_xml(lab, volume, "vdb", serial="after-restart"), LIVE_CONFIG)
    wait_console(console, "after-restart", 30, start=mark)


def test_drop_pool_removes_only_domains_using_that_pool(lab: LabInfo, tmp_path: Path) -> None:
    mine = make_pool(lab, tmp_path / "mine")
    conn = libvirt.open(lab.hosts[0].uri)
    try:
        inside = conn.defineXML(
            guest_xml(lab, "uses-pool", f"{mine.pool}/root", tmp_path / "a.log")
        ).UUIDString()
        outside = conn.defineXML(
            guest_xml(lab, "elsewhere", f"{lab.pool}/not-this-pool", tmp_path / "b.log")
        )
        drop_pool(mine)
        names = {d.name() for d in conn.listAllDomains()}
        assert "uses-pool" not in names
        assert "elsewhere" in names
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByUUIDString(inside)
        outside.undefine()
    finally:
        conn.close()
    with pytest.raises(rados.ObjectNotFound):  # the pool itself is gone
        watchers(lab, f"{mine.pool}/root")


def test_volctl_runs_as_client_volctl_with_profile_rbd_caps_only(lab: LabInfo) -> None:
    """The lab's config, lab.json and each host's secret use client.volctl, whose caps are
    `profile rbd` on mon and osd: enough for RBD, not for administering the cluster."""
    cfg = load_config(lab.config_path)
    assert cfg.ceph.user == lab.ceph_user == "volctl"
    admin = rados.Rados(conffile=lab.ceph_conf, rados_id=lab.admin_user)
    admin.connect(timeout=30)
    try:
        ret, out, err = admin.mon_command(
            '{"prefix": "auth get", "entity": "client.volctl", "format": "json"}', b""
        )
        assert ret == 0, err
        (entity,) = json.loads(out)
        assert entity["caps"] == {"mon": "profile rbd", "osd": "profile rbd"}
    finally:
        admin.shutdown()
    for host in lab.hosts:
        conn = libvirt.open(host.uri)
        try:
            usage = conn.secretLookupByUUIDString(lab.secret_uuid).usageID()
            assert usage.startswith("client.volctl ")
        finally:
            conn.close()
    volctl = rados.Rados(conffile=lab.ceph_conf, rados_id=lab.ceph_user)
    volctl.connect(timeout=30)
    try:
        ret, _out, err = volctl.mon_command(
            '{"prefix": "osd pool create", "pool": "not-allowed", "pg_num": 8}', b""
        )
        assert ret != 0, err
        assert "denied" in err.lower(), err
    finally:
        volctl.shutdown()
