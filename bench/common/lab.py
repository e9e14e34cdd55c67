"""The lab a benchmark runs on: an existing one (`--lab-dir` with a lab.json) or its own.

Benchmarks must not collide with the test suite's lab, so by default they bring up their own
under /var/tmp/volctl-bench-lab with `volctl lab up` and take it down again at the end
(`--keep-lab` keeps it for the next benchmark).  Everything else in bench/ gets the lab's
facts from `reconciler.lab.info.LabInfo`, never by guessing paths.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from reconciler.lab.info import LabHost, LabInfo

DEFAULT_LAB_DIR = "/var/tmp/volctl-bench-lab"
VOLCTL = [sys.executable, "-m", "reconciler.cli.main"]


@dataclass
class Lab:
    info: LabInfo
    owned: bool  # brought up by this benchmark (and so taken down by it)

    def host(self, name: str) -> LabHost:
        for h in self.info.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def admin_uri(self, host: LabHost) -> str | None:
        """libvirt admin-API URI of a host's daemon (its admin socket next to the main one)."""
        sock = self.socket_path(host)
        if sock is None:
            return None
        admin = Path(sock).with_name("libvirt-admin-sock")
        return f"libvirtd:///system?socket={admin}" if admin.exists() else None

    @staticmethod
    def socket_path(host: LabHost) -> str | None:
        q = parse_qs(urlparse(host.uri).query)
        if "socket" in q:
            return q["socket"][0]
        return None

    def ceph_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CEPH_CONF"] = self.info.ceph_conf
        return env

    def close(self) -> None:
        if self.owned:
            print(f"bench: taking the lab down ({self.info.dir})", flush=True)
            subprocess.run(
                [*VOLCTL, "lab", "down", "--dir", self.info.dir], check=False, timeout=120
            )


def add_lab_args(p: argparse.ArgumentParser, default_hosts: int) -> None:
    p.add_argument(
        "--lab-dir",
        default=os.environ.get("VOLCTL_BENCH_LAB", DEFAULT_LAB_DIR),
        help="lab directory; used as is when it holds a lab.json, else brought up "
        "there with `volctl lab up` (default %(default)s)",
    )
    p.add_argument(
        "--lab-hosts",
        type=int,
        default=default_hosts,
        help="hosts to bring up when the benchmark starts its own lab",
    )
    p.add_argument(
        "--keep-lab",
        action="store_true",
        help="leave a lab this benchmark brought up running afterwards",
    )


def open_lab(args: argparse.Namespace) -> Lab:
    lab_dir = Path(args.lab_dir)
    if (lab_dir / "lab.json").is_file():
        info = LabInfo.load(lab_dir)
        if _alive(info):
            if len(info.hosts) < args.lab_hosts:
                raise SystemExit(
                    f"lab {lab_dir} has {len(info.hosts)} hosts, "
                    f"{args.lab_hosts} needed; `volctl lab down --dir {lab_dir}`"
                )
            return Lab(info=info, owned=False)
    t0 = time.monotonic()
    print(f"bench: bringing up a lab with {args.lab_hosts} hosts in {lab_dir}", flush=True)
    proc = subprocess.run(
        [*VOLCTL, "lab", "up", "--hosts", str(args.lab_hosts), "--dir", str(lab_dir)],
        check=False,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SystemExit(f"`volctl lab up` failed with exit code {proc.returncode}")
    print(f"bench: lab up in {time.monotonic() - t0:.1f}s", flush=True)
    return Lab(info=LabInfo.load(lab_dir), owned=not args.keep_lab)


def _alive(info: LabInfo) -> bool:
    for h in info.hosts:
        try:
            os.kill(h.pid, 0)
        except OSError:
            return False
    return True
