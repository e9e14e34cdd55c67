"""What the engine's end-to-end tests need: read the real world, write specs, run volctl.

Everything asserted comes from libvirt (every lab host) and from RBD directly, never from
volctl's own view.  `volctl` runs as a subprocess exactly as a user runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import libvirt
import rados
import rbd

from reconciler.identity import XMLNS
from reconciler.lab.info import LabInfo
from reconciler.lab.testing import LabPool

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Dom:
    host: str
    name: str
    active: bool
    ours: bool
    live_disks: Mapping[str, str]  # target -> "pool/image"
    config_disks: Mapping[str, str]
    xml: str


def _disks(xml: str) -> dict[str, str]:
    out = {}
    for disk in ET.fromstring(xml).iter("disk"):
        src, tgt = disk.find("source"), disk.find("target")
        if src is not None and tgt is not None and src.get("protocol") == "rbd":
            out[str(tgt.get("dev"))] = str(src.get("name"))
    return out


def domains(info: LabInfo, hosts: Iterable[str] | None = None) -> list[Dom]:
    """Every domain on the lab hosts (all of them, unless `hosts` narrows it)."""
    out: list[Dom] = []
    wanted = set(hosts) if hosts is not None else None
    for h in info.hosts:
        if wanted is not None and h.name not in wanted:
            continue
        conn = libvirt.open(h.uri)
        try:
            for d in conn.listAllDomains():
                xml = d.XMLDesc(0)
                inactive = d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                out.append(
                    Dom(h.name, d.name(), bool(d.isActive()), XMLNS in inactive, _disks(xml),
                        _disks(inactive), xml)
                )  # fmt: skip
        finally:
            conn.close()
    return out


def by_name(doms: Iterable[Dom]) -> dict[str, list[Dom]]:
    out: dict[str, list[Dom]] = {}
    for d in doms:
        out.setdefault(d.name, []).append(d)
    return out


@dataclass(frozen=True)
class Img:
    name: str
    size: int
    meta: Mapping[str, str]
    parent: str | None
    watchers: int


def images(info: LabInfo, pool: str) -> dict[str, Img]:
    """Every RBD image in `pool`, with image-meta, parent and watcher count."""
    out: dict[str, Img] = {}
    with rados.Rados(conffile=info.ceph_conf) as cluster, cluster.open_ioctx(pool) as io:
        for name in rbd.RBD().list(io):
            with rbd.Image(io, name, read_only=True) as img:
                try:
                    p = img.parent_info()
                    parent: str | None = f"{p[0]}/{p[1]}@{p[2]}"
                except rbd.ImageNotFound:
                    parent = None
                out[name] = Img(
                    name,
                    img.size(),
                    dict(img.metadata_list()),
                    parent,
                    len(list(img.watchers_list())),
                )
    return out


def wait_for(pred: Callable[[], T | None], timeout: float, what: str, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = pred()
        except Exception as exc:  # noqa: BLE001 - a daemon restarting, retried until timeout
            last = exc
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def guest_ready(console_dir: Path, vm: str) -> bool:
    log = console_dir / f"{vm}+console.log"
    return log.is_file() and "VOLCTL-GUEST: ready" in log.read_text(errors="replace")


def doc(kind: str, name: str, spec: Mapping[str, Any]) -> str:
    body = json.dumps(dict(spec))
    return f"apiVersion: volctl.io/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {body}\n"


def write_specs(
    directory: Path,
    info: LabInfo,
    vms: Mapping[str, str | None],
    volumes: Mapping[str, tuple[int, str]] = {},
    attachments: Mapping[str, tuple[str, str]] = {},
) -> None:
    """Replace the spec files in `directory`: the lab inventory plus the given resources.

    vms: name -> pinned host or None; volumes: name -> (GiB, reclaimPolicy);
    attachments: name -> (volume, vm)."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = [
        doc("VirtualMachine", n, {"instanceType": "small", "image": "lab-base"} | (
            {"host": h} if h else {}))
        for n, h in sorted(vms.items())
    ]  # fmt: skip
    docs += [
        doc("Volume", n, {"size": g, "reclaimPolicy": p}) for n, (g, p) in sorted(volumes.items())
    ]
    docs += [
        doc("VolumeAttachment", n, {"volume": v, "vm": m})
        for n, (v, m) in sorted(attachments.items())
    ]
    inv = directory / "inventory.yaml"
    if not inv.exists():
        inv.write_text(Path(info.inventory_path).read_text())
    tmp = directory / ".app.yaml.tmp"
    tmp.write_text("---\n".join(docs))
    tmp.replace(directory / "app.yaml")


def volctl(lab_pool: LabPool, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "reconciler.cli.main", "--config", str(lab_pool.config_path)]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )


class Controller:
    """`volctl run` as a subprocess (logs in ROOT/run-N.log)."""

    def __init__(self, lab_pool: LabPool, *extra: str) -> None:
        self.lab_pool = lab_pool
        self.extra: tuple[str, ...] = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.lab_pool.root / f"run-{self.runs}.log").open("wb")
        cmd = [sys.executable, "-m", "reconciler.cli.main", "--config"]
        cmd += [str(self.lab_pool.config_path), "run", "--resync", "3", *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        log.close()

    def status(self, path: str = "status") -> dict[str, Any]:
        url = f"http://{self.lab_pool.config.listen}/api/v1/{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data

    def wait_converged(self, *, after: int, timeout: float) -> dict[str, Any]:
        """A converged snapshot from a pass that started after generation `after` was seen."""

        def ok() -> dict[str, Any] | None:
            st = self.status()
            return st if st["converged"] and st["generation"] >= after + 2 else None

        return wait_for(ok, timeout, f"a converged pass after generation {after}")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise

    def log(self) -> str:
        return "".join(
            (self.lab_pool.root / f"run-{i}.log").read_text(errors="replace")[-4000:]
            for i in range(1, self.runs + 1)
        )
