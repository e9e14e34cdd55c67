"""Fast checks of the lab's pieces that need no running lab."""

from __future__ import annotations

import gzip
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.cli.main import build_parser
from reconciler.config import load_config
from reconciler.lab import guest_image, mounts
from reconciler.lab.ceph import CephCluster
from reconciler.lab.inventory import config_doc, write_config, write_inventory
from reconciler.lab.lab import Lab
from reconciler.lab.proc import LabError, alive, free_ports, port_free, proc_state, stop_pids
from reconciler.loading import load_paths


def test_a_zombie_counts_as_gone() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while proc_state(child.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc_state(child.pid) == "Z"
    assert not alive(child.pid)
    child.wait()
    assert proc_state(child.pid) is None


def test_stop_pids_escalates_to_sigkill() -> None:
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal,time; signal.signal(15, signal.SIG_IGN); "
         "print('ok', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"ok\n"
    t0 = time.monotonic()
    stop_pids([stubborn.pid], grace=0.3)
    assert not alive(stubborn.pid)
    assert time.monotonic() - t0 < 3
    assert stubborn.wait() == -9


def test_free_ports_are_free_and_distinct() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3
    assert all(port_free(p) for p in ports)
    with socket.socket() as s:
        # daemons bind with SO_REUSEADDR (a port may be in TIME_WAIT after an earlier lab)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", ports[0]))
        s.listen()
        assert not port_free(ports[0])


def test_inventory_and_config_load_with_volctls_own_loaders(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    hosts = [("h1", "qemu+unix:///system?socket=/x/h1/run/libvirt-sock"), ("h2", "test:///default")]
    write_inventory(inv, hosts, "rbd/volctl-lab-base@base")
    state = load_paths([inv])
    assert [(h.meta.name, h.uri, h.pmid, h.cpu_capacity) for h in state.hosts.values()] == [
        ("h1", hosts[0][1], 1, 16),
        ("h2", hosts[1][1], 2, 16),
    ]
    assert state.images["lab-base"].id == 1
    assert {n: t.tid for n, t in state.instance_types.items()} == {
        "small": 1,
        "medium": 2,
        "large": 3,
    }
    cfg_path = tmp_path / "volctl.yaml"
    write_config(
        cfg_path,
        config_doc(
            lab_dir=tmp_path, ceph_conf=tmp_path / "ceph.conf", pool="p1", user="admin",
            secret_uuid="u-1", monitors=(("127.0.0.1", 16789),), listen="127.0.0.1:18470",
        ),
    )  # fmt: skip
    cfg = load_config(str(cfg_path))
    assert cfg.ceph.pool == "p1"
    assert cfg.ceph.monitors == (("127.0.0.1", 16789),)
    assert cfg.api == "http://127.0.0.1:18470"
    assert cfg.store == str(tmp_path / "store")


def test_ceph_conf_has_the_settings_that_matter(tmp_path: Path) -> None:
    cluster = CephCluster(tmp_path, mon_port=16789, mon_v2_port=13300)
    cluster.write_conf("f5c1d0a2-0000-4000-8000-000000000000")
    text = cluster.conf.read_text()
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif "=" in line:
            sections.setdefault(current, []).append(line.split("=")[0].strip())
    assert "paxos propose interval = 0.02" in text
    assert "osd fast shutdown = false" in text
    assert "mon host = [v2:127.0.0.1:13300,v1:127.0.0.1:16789]" in text
    assert "keyring" in sections["client"]
    assert "keyring" not in sections["global"]
    assert "log file" not in sections["global"]
    assert "mgr disabled modules" in sections["mgr"]


def test_initrd_is_a_valid_newc_archive(tmp_path: Path) -> None:
    kdir = tmp_path / "kernel-x"
    (kdir / "mods").mkdir(parents=True)
    (kdir / "mods" / "button.ko").write_bytes(b"\0depends=\0")
    init = tmp_path / "init"
    init.write_bytes(b"\x7fELF-fake")
    out = tmp_path / "initrd.gz"
    guest_image.write_initrd(kdir, init, out, roots=("button",))
    data = gzip.decompress(out.read_bytes())
    entries = {}
    pos = 0
    while True:
        head = data[pos : pos + 110]
        assert head[:6] == b"070701"
        fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += (4 - pos % 4) % 4
        body = data[pos : pos + size]
        pos += size + (4 - size % 4) % 4
        if name == "TRAILER!!!":
            break
        entries[name] = (mode, body, fields[9:11])
    assert stat.S_ISREG(entries["init"][0])
    assert entries["init"][1] == b"\x7fELF-fake"
    assert entries["init"][0] & 0o111
    assert entries["mods/order"][1] == b"button"
    assert stat.S_ISCHR(entries["dev/console"][0])
    assert entries["dev/console"][2] == [5, 1]


def test_mountinfo_sees_our_own_namespace_root() -> None:
    assert "/" in {point for _root, point in mounts.mounted_anywhere()}
    assert mounts.mounts_under(Path("/nonexistent-volctl-dir")) == []


def test_down_refuses_a_directory_that_is_not_a_lab(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    with pytest.raises(LabError, match="does not look like a lab"):
        Lab(tmp_path).down(quiet=True)
    assert (tmp_path / "precious").exists()
    assert Lab(tmp_path / "absent").down(quiet=True) == 0.0


def test_cli_registers_lab_subcommands() -> None:
    parser = build_parser()
    args = parser.parse_args(["lab", "up", "--hosts", "2", "--dir", "/tmp/x", "--mon-port", "1"])
    assert (args.hosts, args.dir, args.mon_port, args.mon_v2_port) == (2, "/tmp/x", 1, None)
    for sub in ("down", "status", "env", "prepare"):
        assert callable(parser.parse_args(["lab", sub]).func)


def test_up_refuses_without_root_or_with_zero_hosts(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        with pytest.raises(LabError, match="at least 1"):
            Lab(tmp_path / "lab").up(0)
    else:
        with pytest.raises(LabError, match="root"):
            Lab(tmp_path / "lab").up(1)
    assert not (tmp_path / "lab").exists()


def test_reaper_adopts_and_reaps_orphans_at_once_and_forwards_sigterm() -> None:
    script = 'sh -c "sleep 1 & echo \\$!"; exec sleep 30'
    reaper = subprocess.Popen(
        [sys.executable, "-m", "reconciler.lab.reaper", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reaper.stdout is not None
    orphan = int(reaper.stdout.readline())

    def parent() -> int:
        status = Path(f"/proc/{orphan}/status").read_text().splitlines()
        return int(next(line.split()[1] for line in status if line.startswith("PPid:")))

    deadline = time.monotonic() + 3
    while parent() != reaper.pid and time.monotonic() < deadline:  # its shell is exiting
        time.sleep(0.01)
    assert parent() == reaper.pid  # adopted by the subreaper, not by PID 1
    deadline = time.monotonic() + 10
    while proc_state(orphan) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.002)
    exited = time.monotonic()
    while proc_state(orphan) is not None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc_state(orphan) is None  # reaped, not left a zombie
    assert time.monotonic() - exited < 0.5  # PID 1 here would leave it a zombie for ~2 s
    reaper.terminate()  # forwarded to `sleep 30`
    assert reaper.wait(timeout=5) == 128 + 15
