"""Running several `volctl run` replicas on the lab, and reading the world they leave.

Used by the HA lab tests and by bench B6: every replica is a real process with a RADOS store
(`rados://<test pool>/volctl`), its own REST port and log; the world is read from libvirt and
RBD directly, never from what the replicas claim.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt
import rados
import rbd
import yaml

from reconciler.identity import XMLNS
from reconciler.lab.info import LabInfo
from reconciler.lab.proc import free_ports
from reconciler.lab.testing import LabPool

ROOT = Path(__file__).resolve().parents[2]
LEASE = 3.0


def ha_config(pool: LabPool, lease: float = LEASE, namespace: str = "volctl") -> Path:
    """The test pool's config with `store: rados://POOL/volctl` and the given lease."""
    doc = yaml.safe_load(pool.config_path.read_text())
    doc["store"] = f"rados://{pool.pool}/{namespace}"
    doc["lease"] = lease
    path = pool.root / "ha.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("VOLCTL_")}
    out["PYTHONPATH"] = str(ROOT)
    return out


def volctl(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "--config", str(config), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env(),
    )


def http(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            raw, ctype, status = resp.read(), resp.headers.get("Content-Type", ""), resp.status
    except urllib.error.HTTPError as err:
        raw, ctype, status = err.read(), err.headers.get("Content-Type", ""), err.code
    return status, json.loads(raw) if ctype.startswith("application/json") else raw.decode()


def until(what: str, check: Callable[[], Any], timeout: float, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, KeyError, ValueError, TypeError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last={last!r}")


@dataclass
class Replica:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def leader_view(self) -> dict[str, Any]:
        status, body = http(self.url + "/api/v1/leader")
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


@dataclass
class Replicas:
    config: Path
    workdir: Path
    lease: float = LEASE
    members: dict[str, Replica] = field(default_factory=dict)

    def start(self, name: str) -> Replica:
        (port,) = free_ports(1)
        log = self.workdir / f"{name}.log"
        cmd = [
            sys.executable, "-m", "reconciler.cli.main", "--config", str(self.config), "run",
            "--replica-id", name, "--lease", str(self.lease), "--listen", f"127.0.0.1:{port}",
            "--resync", "5",
        ]  # fmt: skip
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env())
        rep = Replica(name, port, log, proc)
        self.members[name] = rep
        until(f"{name} serving", lambda: http(rep.url + "/healthz")[0] == 200, 30)
        return rep

    def alive(self) -> list[Replica]:
        return [r for r in self.members.values() if r.proc.poll() is None]

    def leader(self, among: list[Replica] | None = None) -> Replica:
        """The replica whose own view says it leads (and may act)."""

        def find() -> Replica | None:
            for r in among or self.alive():
                with contextlib.suppress(OSError, AssertionError):
                    if r.leader_view()["role"] == "leader":
                        return r
            return None

        found: Replica = until("a leader", find, 8 * self.lease)
        return found

    def stop(self) -> None:
        for r in self.members.values():
            if r.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    r.proc.send_signal(signal.SIGCONT)
                    r.proc.terminate()
        for r in self.members.values():
            try:
                r.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()


@contextlib.contextmanager
def replicas(config: Path, workdir: Path, names: list[str]) -> Iterator[Replicas]:
    group = Replicas(config, workdir)
    try:
        for name in names:
            group.start(name)
        yield group
    finally:
        group.stop()


def fleet(info: LabInfo, vms: list[str], running: bool = False) -> str:
    """The lab inventory plus one small VM per name."""
    docs = [Path(info.inventory_path).read_text()]
    for name in vms:
        spec: dict[str, Any] = {"instanceType": "small", "image": "lab-base", "running": running}
        docs.append(
            yaml.safe_dump(
                {
                    "apiVersion": "volctl.io/v1",
                    "kind": "VirtualMachine",
                    "metadata": {"name": name},
                    "spec": spec,
                },
                sort_keys=False,
            )
        )
    return "\n---\n".join(docs)


def domains(info: LabInfo, pool: str) -> dict[str, list[str]]:
    """Domain name -> hosts it is defined on (only domains with a disk in `pool`)."""
    out: dict[str, list[str]] = {}
    for host in info.hosts:
        conn = libvirt.open(host.uri)
        try:
            for dom in conn.listAllDomains():
                if f"name='{pool}/" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE):
                    out.setdefault(dom.name(), []).append(host.name)
        finally:
            conn.close()
    return out


def domain_epochs(info: LabInfo, pool: str) -> dict[str, str | None]:
    """Domain name -> the `epoch` of volctl's owner mark, read from libvirt (domains in `pool`)."""
    out: dict[str, str | None] = {}
    for host in info.hosts:
        conn = libvirt.open(host.uri)
        try:
            for dom in conn.listAllDomains():
                xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                if f"name='{pool}/" in xml:
                    mark = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, XMLNS)
                    found = re.search(r'epoch="(\d+)"', mark)
                    out[dom.name()] = found.group(1) if found else None
        finally:
            conn.close()
    return out


def images(info: LabInfo, pool: str) -> dict[str, dict[str, Any]]:
    """RBD image -> {meta, created (unix)} in `pool`."""
    out: dict[str, dict[str, Any]] = {}
    with (
        rados.Rados(conffile=info.ceph_conf, rados_id=info.ceph_user) as cluster,
        cluster.open_ioctx(pool) as io,
    ):
        for name in rbd.RBD().list(io):
            with contextlib.suppress(rbd.ImageNotFound), rbd.Image(io, name, read_only=True) as im:
                out[name] = {
                    "meta": dict(im.metadata_list()),
                    "created": im.create_timestamp().timestamp(),
                }
    return out
