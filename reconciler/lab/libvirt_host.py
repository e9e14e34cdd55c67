"""One lab host: a private, privileged libvirtd with the qemu driver, reachable by unix socket.

Why: volctl manages many libvirt hosts; the lab fakes N of them on one machine.  Each host
gets its own config, run, state, log and cache directories (bind-mounted by
`reconciler.lab.reaper` in a private mount namespace), its own hostname and host UUID, and
its own pid file, so the daemons never share state.  qemu.conf is the minimal sandbox-safe
set: `stdio_handler = "file"` (no virtlogd), root user, no security driver, no cgroups, no
namespaces.  The qemu capabilities cache is copied between hosts (and kept in the lab cache)
so only the very first daemon probes qemu.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import libvirt

from reconciler.lab.netns import TCP_PORT, LabNet
from reconciler.lab.proc import LabError, alive, cmdline, read_pid, stop_pids, tail, wait_gone
from reconciler.lab.reaper import BIND_MOUNTS

T = TypeVar("T")

QEMU_CONF = """\
# written by `volctl lab up`: sandbox-friendly qemu driver settings
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""

QEMU_USER = "libvirt-qemu"  # Debian's build default; resolved by libvirtd before qemu.conf
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lab-libvirt")


def with_timeout(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run a libvirt call in a worker thread; raise LabError if it takes longer than TIMEOUT."""
    fut = _pool.submit(fn)
    try:
        return fut.result(timeout=timeout)
    except FutureTimeout as exc:
        raise LabError(f"{what}: no answer within {timeout:.0f} s") from exc
    except libvirt.libvirtError as exc:
        raise LabError(f"{what}: {exc}") from exc


def host_uuid(lab_dir: Path, name: str) -> str:
    """A stable UUID per (lab dir, host name), so two labs never share a host UUID."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"volctl-lab:{lab_dir}:{name}"))


@dataclass(frozen=True)
class LibvirtHost:
    lab_dir: Path
    name: str
    caps_cache: Path | None = None  # shared qemu capabilities cache
    net: LabNet | None = None  # network-namespace mode: own netns, qemu+tcp

    @property
    def dir(self) -> Path:
        return self.lab_dir / "hosts" / self.name

    @property
    def socket(self) -> Path:
        return self.dir / "run" / "libvirt-sock"

    @property
    def unix_uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def uri(self) -> str:
        """qemu+tcp to the host's netns address in netns mode, else its unix socket."""
        return self.net.uri(self.name) if self.net else self.unix_uri

    @property
    def reaper_pid_file(self) -> Path:
        return self.dir / "reaper.pid"

    @property
    def log(self) -> Path:
        return self.dir / "log" / "libvirtd.log"

    def reaper_pid(self) -> int | None:
        """PID of this host's reaper (which runs libvirtd), if it is alive and ours."""
        pid = read_pid(self.reaper_pid_file)
        if pid and alive(pid) and f"--root {self.dir} " in cmdline(pid):
            return pid
        return None

    def libvirtd_pid(self) -> int | None:
        pid = read_pid(self.dir / "run" / "libvirtd.pid")
        return pid if pid and alive(pid) and "libvirtd" in cmdline(pid) else None

    def qemu_pids(self) -> list[int]:
        """PIDs of this host's running guests, from the qemu driver's pid files."""
        out = []
        for pf in sorted((self.dir / "run" / "qemu").glob("*.pid")):
            pid = read_pid(pf)
            if pid and alive(pid) and "qemu" in cmdline(pid):
                out.append(pid)
        return out

    def write_conf(self) -> None:
        for sub, _target in BIND_MOUNTS:
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        etc = self.dir / "etc"
        (etc / "qemu.conf").write_text(QEMU_CONF)
        (etc / "libvirtd.conf").write_text(
            "# written by `volctl lab up`\n" + self._listen_conf() + "listen_tls = 0\n"
            'auth_unix_ro = "none"\nauth_unix_rw = "none"\n'
            'unix_sock_group = "root"\nunix_sock_ro_perms = "0777"\nunix_sock_rw_perms = "0770"\n'
            "max_clients = 256\nmax_workers = 20\nmax_client_requests = 20\n"
            f'host_uuid = "{host_uuid(self.lab_dir, self.name)}"\n'
            "log_level = 3\n"
            'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
        )
        self._write_nss()
        caps_dst = self.dir / "cache" / "qemu" / "capabilities"
        if self.caps_cache and any(self.caps_cache.glob("*.xml")) and not caps_dst.exists():
            shutil.copytree(self.caps_cache, caps_dst)

    def _listen_conf(self) -> str:
        if not self.net:
            return "listen_tcp = 0\n"
        return (
            f'listen_tcp = 1\nlisten_addr = "{self.net.host_ip(self.name)}"\n'
            f'tcp_port = "{TCP_PORT}"\nauth_tcp = "none"\n'
        )

    def _write_nss(self) -> None:
        """Private passwd/group with the `libvirt-qemu` user if the machine has none."""
        nss = self.dir / "nss"
        try:
            pwd.getpwnam(QEMU_USER)
            grp.getgrnam(QEMU_USER)
        except KeyError:
            pass
        else:
            return
        nss.mkdir(exist_ok=True)
        used = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
        ident = next(i for i in range(64055, 65000) if i not in used)
        passwd = Path("/etc/passwd").read_text()
        group = Path("/etc/group").read_text()
        if not any(line.startswith(f"{QEMU_USER}:") for line in passwd.splitlines()):
            passwd += (
                f"{QEMU_USER}:x:{ident}:{ident}:volctl lab:/var/lib/libvirt:/usr/sbin/nologin\n"
            )
        if not any(line.startswith(f"{QEMU_USER}:") for line in group.splitlines()):
            group += f"{QEMU_USER}:x:{ident}:\n"
        (nss / "passwd").write_text(passwd)
        (nss / "group").write_text(group)

    def nss_binds(self) -> list[str]:
        nss = self.dir / "nss"
        out = []
        for name in ("passwd", "group"):
            if (nss / name).exists():
                out += ["--bind", f"{nss / name}=/etc/{name}"]
        return out

    def spawn(self) -> int:
        """Start the reaper + libvirtd in the background; returns the reaper's PID."""
        if self.reaper_pid():
            raise LabError(f"host {self.name}: libvirtd already running")
        for stale in ("libvirt-sock", "libvirt-sock-ro", "libvirt-admin-sock", "libvirtd.pid"):
            (self.dir / "run" / stale).unlink(missing_ok=True)
        out = (self.dir / "daemon.out").open("ab")
        cmd = [
            sys.executable, "-m", "reconciler.lab.reaper",
            "--root", str(self.dir), "--hostname", self.name, *self.nss_binds(),
            *(["--netns", self.net.netns(self.name)] if self.net else []), "--",
            "libvirtd", "--pid-file", "/run/libvirt/libvirtd.pid",
            "-f", "/etc/libvirt/libvirtd.conf", *(["--listen"] if self.net else []),
        ]  # fmt: skip
        with out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        self.reaper_pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 10  # until the child has exec'd (its cmdline is ours)
        while self.reaper_pid() is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return proc.pid

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the daemon answers on its socket (hostname and domain list)."""
        deadline = time.monotonic() + timeout
        last = "socket never appeared"
        while time.monotonic() < deadline:
            if not self.reaper_pid():
                raise LabError(f"host {self.name}: libvirtd exited\n" + "\n".join(self.log_tails()))
            if self.socket.exists():
                try:
                    hostname = with_timeout(self._probe, 10, f"host {self.name}")
                except LabError as exc:
                    last = str(exc)
                else:
                    if hostname != self.name:
                        raise LabError(f"host {self.name}: reports hostname {hostname!r}")
                    self._save_caps()
                    return
            time.sleep(0.05)
        raise LabError(f"host {self.name}: not ready after {timeout:.0f} s: {last}")

    def _probe(self) -> str:
        conn = libvirt.open(self.uri)
        try:
            conn.listAllDomains()
            conn.getCapabilities()  # makes the qemu driver probe (or load cached) qemu caps
            hostname: str = conn.getHostname()
            return hostname
        finally:
            conn.close()

    def _save_caps(self) -> None:
        src = self.dir / "cache" / "qemu" / "capabilities"
        if self.caps_cache and not any(self.caps_cache.glob("*.xml")) and any(src.glob("*.xml")):
            self.caps_cache.mkdir(parents=True, exist_ok=True)
            for f in src.glob("*.xml"):  # atomically: other labs may read the cache right now
                tmp = self.caps_cache / f".{f.name}.{os.getpid()}.tmp"
                shutil.copy2(f, tmp)
                tmp.replace(self.caps_cache / f.name)

    def define_secret(self, secret_uuid: str, usage: str, key: bytes) -> None:
        """Define the ceph secret (persistent, private) holding KEY (raw bytes, not base64)."""
        xml = (
            "<secret ephemeral='no' private='yes'>"
            f"<uuid>{secret_uuid}</uuid>"
            f"<usage type='ceph'><name>{usage}</name></usage></secret>"
        )

        def define() -> None:
            conn = libvirt.open(self.uri)
            try:
                conn.secretDefineXML(xml, 0).setValue(key, 0)
            finally:
                conn.close()

        with_timeout(define, 20, f"host {self.name}: define secret")

    def has_secret(self, secret_uuid: str) -> bool:
        def check() -> bool:
            conn = libvirt.open(self.uri)
            try:
                conn.secretLookupByUUIDString(secret_uuid)
            except libvirt.libvirtError:
                return False
            finally:
                conn.close()
            return True

        try:
            return with_timeout(check, 5, f"host {self.name}")
        except LabError:
            return False

    def health(self) -> str:
        if not self.reaper_pid():
            return "down"
        try:
            with_timeout(self._probe, 5, f"host {self.name}")
        except LabError as exc:
            return f"unreachable: {exc}"
        return "ok"

    def stop_daemon(self, grace: float = 8) -> None:
        """Stop libvirtd (its reaper forwards SIGTERM); running guests keep running."""
        pids = [p for p in (self.reaper_pid(), self.libvirtd_pid()) if p]
        stop_pids(pids, grace)
        self.reaper_pid_file.unlink(missing_ok=True)

    def stop_guests(self, grace: float = 5) -> None:
        """Terminate this host's qemu processes by their pid files (no libvirt call needed)."""
        stop_pids(self.qemu_pids(), grace)

    def wait_guests_gone(self, timeout: float) -> list[int]:
        return wait_gone(self.qemu_pids(), timeout)

    def log_tails(self) -> list[str]:
        out: list[str] = []
        for path in (self.dir / "daemon.out", self.log):
            lines = tail(path, 10)
            if lines:
                out += [f"== {path}", *lines]
        return out


def conn_for(uri: str) -> Any:
    """Open a libvirt connection to a lab host (for tests and helpers)."""
    return with_timeout(lambda: libvirt.open(uri), 10, f"open {uri}")
