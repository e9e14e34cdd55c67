"""A throwaway lab (own dir, own ports, 1 host) goes up, runs a guest with RBD disks, and
`lab down` leaves no process, mount, namespace, cgroup dir or file behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest

from reconciler.lab import mounts
from reconciler.lab.lab import Lab
from reconciler.lab.proc import alive, cmdline, free_ports, port_free, read_pid
from reconciler.lab.reaper import BIND_MOUNTS, MOUNTPOINT_MARK
from reconciler.lab.testing import (
    clone_base,
    create_volume,
    guest_xml,
    rbd_disk_xml,
    session_lab_dir,
)

pytestmark = pytest.mark.lab  # real Ceph + libvirtd, like the `lab` fixture's tests


def _cgroup_dirs() -> set[str]:
    base = Path("/sys/fs/cgroup")
    out = set()
    for ctrl in base.iterdir() if base.is_dir() else []:
        for p in ctrl.glob("machine*"):
            out.add(str(p))
    return out


def _netns() -> set[str]:
    netns = Path("/run/netns")
    return {p.name for p in netns.iterdir()} if netns.is_dir() else set()


def _pids_mentioning(text: str) -> list[int]:
    return [
        int(e.name)
        for e in os.scandir("/proc")
        if e.name.isdigit() and alive(int(e.name)) and text in cmdline(int(e.name))
    ]


def _seconds(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found[1])


def _volctl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "lab", *args, "--dir", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_throwaway_lab_up_and_down_leaves_nothing_behind() -> None:
    root_dir = session_lab_dir(Path("/var/tmp"), "volctl-throwaway-lab")
    lab = Lab(root_dir)
    lab.down(quiet=True)
    cgroups_before, netns_before = _cgroup_dirs(), _netns()
    v1, v2 = free_ports(2)

    up = _volctl(root_dir, "up", "--hosts", "1", "--mon-port", str(v1), "--mon-v2-port", str(v2))
    assert up.returncode == 0, up.stderr
    took_up = _seconds(r"\[\s*([\d.]+)s\] lab up: 1 hosts, Ceph HEALTH_OK", up.stderr)
    assert took_up < 60, f"lab up took {took_up:.1f} s"  # its own clock: no interpreter start

    status = _volctl(root_dir, "status")
    assert status.returncode == 0, status.stdout
    assert "HEALTH_OK" in status.stdout
    assert "host h1" in status.stdout
    env = _volctl(root_dir, "env")
    assert f"export VOLCTL_CONFIG={root_dir}/volctl.yaml" in env.stdout
    assert f"export CEPH_CONF={root_dir}/ceph/ceph.conf" in env.stdout

    # a guest with an RBD root disk and a hot-plugged RBD volume is running at `down`
    info = lab.info()
    root = clone_base(info, info.pool, "doomed-root")
    vol = create_volume(info, info.pool, "doomed-vol")
    conn = libvirt.open(info.hosts[0].uri)
    dom = conn.defineXML(guest_xml(info, "doomed", root, root_dir / "consoles" / "doomed.log"))
    dom.create()
    dom.attachDeviceFlags(rbd_disk_xml(info, vol, "vdb"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    conn.close()

    state = lab.state()
    assert state is not None
    host = lab.host("h1", state)
    pids = [p for p in lab.ceph(state).pids().values() if p]
    pids += [p for p in (host.reaper_pid(), host.libvirtd_pid()) if p]
    pids += host.qemu_pids()
    assert len(pids) == 6  # mon, osd, mgr, reaper, libvirtd, qemu
    assert mounts.mounts_under(root_dir)  # the host's private bind mounts

    down = _volctl(root_dir, "down")
    assert down.returncode == 0, down.stderr
    took_down = _seconds(r"lab down in ([\d.]+) s", down.stderr)
    assert took_down < 10, f"lab down took {took_down:.1f} s"

    assert [p for p in pids if alive(p)] == []
    assert _pids_mentioning(str(root_dir) + "/") == []
    assert mounts.mounts_under(root_dir) == []
    assert not root_dir.exists()
    assert _netns() == netns_before
    assert _cgroup_dirs() <= cgroups_before
    assert port_free(v1)
    assert port_free(v2)
    in_use = {point for _root, point in mounts.mounted_anywhere()}
    for _sub, mp in BIND_MOUNTS:  # lab-made mount points go, unless another lab mounts there
        if Path(mp).is_dir() and {p.name for p in Path(mp).iterdir()} == {MOUNTPOINT_MARK}:
            assert mp in in_use
    assert Path(state.cache_dir).is_dir()  # the cache is kept on purpose
    assert read_pid(root_dir / "ceph" / "run" / "mon.a.pid") is None

    again = _volctl(root_dir, "down")  # idempotent
    assert again.returncode == 0
    assert "no lab in" in again.stderr


def test_failed_up_prints_log_tails_and_cleans_up(tmp_path: Path) -> None:
    """A libvirtd that cannot start makes `up` fail loudly and leave nothing running."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "libvirtd"
    fake.write_text("#!/bin/sh\necho 'fake libvirtd: refusing to start' >&2\nexit 3\n")
    fake.chmod(0o755)
    lab_dir = session_lab_dir(Path("/var/tmp"), "volctl-failing-lab")
    Lab(lab_dir).down(quiet=True)
    v1, v2 = free_ports(2)
    res = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "lab", "up", "--hosts", "1",
         "--dir", str(lab_dir), "--mon-port", str(v1), "--mon-v2-port", str(v2)],
        capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, PATH=f"{fake_bin}:{os.environ['PATH']}"),
    )  # fmt: skip
    assert res.returncode == 1
    assert "fake libvirtd: refusing to start" in res.stderr  # the host's log tail
    assert "ceph-mon.a.log" in res.stderr  # Ceph's log tails too
    assert "lab up failed; cleaning up" in res.stderr
    assert not lab_dir.exists()
    assert _pids_mentioning(str(lab_dir) + "/") == []
    assert port_free(v1)
    assert port_free(v2)
