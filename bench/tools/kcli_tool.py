"""kcli (PyPI) with a kcli plan: one plan, one VM entry per VM, each with its host's client.

kcli's libvirt provider cannot use RBD at all: it builds every disk as a file volume in a
libvirt storage pool of type dir, logical or zfs (there is no `rbd` anywhere in kcli, and
the lab's libvirtd has no rbd storage backend).  So for kcli the same fleet is, honestly,
a different storage setup: per host a `dir` pool holding the base image as qcow2 (copied
there untimed, like the base image that already sits in RBD for the other tools); each VM's
root disk is a qcow2 overlay backed by it (kcli's thin clone, the file analogue of an RBD
COW clone) and its volume a second 1 GiB qcow2 disk, attached at define time.  Same hosts,
VM sizes, domain type (TCG, `virttype=qemu`) and running state; the end state is checked on
the libvirt side (running, on its host, with two disks).  The plan runs in kcli's default,
sequential mode: `--threaded` (a thread per VM) failed here intermittently, because
concurrent `pool.refresh()` calls hit libvirt's "pool has asynchronous jobs running", which
kcli's bare `except` turns into "you don't have image" and the VM is not deployed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import libvirt
import yaml

from bench.common.fleet import Fleet
from bench.tools.base import ToolRun, ToolUnavailable, run_logged, tail

BIN = Path(sys.executable).parent
POOL = "volctl-bench-kcli"
PLAN = "volctl-bench"
BASE = "benchbase.qcow2"


class Kcli:
    name = "kcli"
    rbd_backed = False

    def __init__(self) -> None:
        self.work: Path | None = None
        self.notes = [
            "kcli: `kcli create plan` (sequential; --threaded races on pool refresh) with one VM "
            "entry per VM (client = its host); "
            "kcli has no RBD support, so root disks are qcow2 overlays on a per-host dir pool "
            "copy of the base image and volumes are local qcow2 files (end state checked on "
            "the libvirt side only)"
        ]

    def prepare(self, fleet: Fleet) -> None:
        if not (BIN / "kcli").exists():
            raise ToolUnavailable("kcli is not installed (pip install -e '.[bench]')")
        self.work = Path(tempfile.mkdtemp(prefix="volctl-bench-kcli-", dir="/var/tmp"))
        home = self.work / "home"
        (home / ".kcli").mkdir(parents=True)
        clients: dict[str, dict[str, object]] = {"default": {"client": fleet.hosts[0]}}
        for host in fleet.hosts:
            pool_dir = self.work / "pools" / host
            pool_dir.mkdir(parents=True)
            subprocess.run(
                [
                    "qemu-img",
                    "convert",
                    "-O",
                    "qcow2",
                    fleet.lab.info.base_image_file,
                    str(pool_dir / BASE),
                ],
                check=True,
                timeout=300,
            )
            self._define_pool(fleet.lab.host(host).uri, pool_dir)
            clients[host] = {"type": "kvm", "url": fleet.lab.host(host).uri, "pool": POOL}
        (home / ".kcli" / "config.yml").write_text(yaml.safe_dump(clients))
        plan = {}
        for vm in fleet.vms:
            plan[vm.name] = {
                "client": vm.host,
                "image": BASE,
                "pool": POOL,
                "numcpus": fleet.cpu,
                "memory": fleet.ram_mib,
                "disks": [fleet.disk_gib, fleet.volume_gib],
                "nets": [],
                "cloudinit": False,
                "vnc": False,
                "virttype": "qemu",
                "cpumodel": "qemu64",
                "start": True,
            }
        self.plan = self.work / "plan.yml"
        self.plan.write_text(yaml.safe_dump(plan, sort_keys=False))
        self.log = str(self.work / "kcli.log")
        self.env = dict(os.environ, HOME=str(home))

    @staticmethod
    def _define_pool(uri: str, path: Path) -> None:
        conn = libvirt.open(uri)
        try:
            with contextlib.suppress(libvirt.libvirtError):
                old = conn.storagePoolLookupByName(POOL)
                with contextlib.suppress(libvirt.libvirtError):
                    old.destroy()
                old.undefine()
            pool = conn.storagePoolDefineXML(
                f"<pool type='dir'><name>{POOL}</name><target><path>{path}</path></target></pool>"
            )
            pool.create()
        finally:
            conn.close()

    def _plan(self) -> ToolRun:
        assert self.work is not None
        rc, _ = run_logged(
            [str(BIN / "kcli"), "create", "plan", "-f", str(self.plan), PLAN],
            self.log,
            env=self.env,
            cwd=str(self.work),
        )
        text = tail(self.log, 400)
        # kcli prints failures per VM but may still exit 0
        failed = [ln for ln in text.splitlines() if "not deployed" in ln or "failure" in ln]
        ok = rc == 0 and not failed
        return ToolRun(ok=ok, error="" if ok else "\n".join(failed[-10:]) or tail(self.log))

    def converge(self, fleet: Fleet) -> ToolRun:
        return self._plan()

    def rerun(self, fleet: Fleet) -> ToolRun:
        return self._plan()

    def cleanup(self, fleet: Fleet) -> None:
        """Domains are removed by the benchmark; here the pools and their files go."""
        if self.work is None:
            return
        for host in fleet.hosts:
            conn = libvirt.open(fleet.lab.host(host).uri)
            try:
                for dom in conn.listAllDomains(0):
                    if dom.name().startswith(fleet.prefix + "-"):
                        with contextlib.suppress(libvirt.libvirtError):
                            dom.destroy()
                        with contextlib.suppress(libvirt.libvirtError):
                            dom.undefine()
                with contextlib.suppress(libvirt.libvirtError):
                    pool = conn.storagePoolLookupByName(POOL)
                    with contextlib.suppress(libvirt.libvirtError):
                        pool.destroy()
                    pool.undefine()
            finally:
                conn.close()
        shutil.rmtree(self.work, ignore_errors=True)
        self.work = None

    def close(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
