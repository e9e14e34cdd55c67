"""The lab's SSH transport: an sshd in each host's namespaces and a client key of the lab's own.

Why: the seed reached its hypervisors as `user@host` over SSH, and `import-legacy` turns those
lines into `qemu+ssh://user@host/system` URIs.  With `volctl lab up --netns --transport ssh`
the lab's Host URIs are exactly that form, so the controller talks to every host the way it
would on a site: libvirt spawns `ssh`, which runs `virt-ssh-helper` on the host, which
relays to that host's libvirtd socket.

Nothing here touches the user's `~/.ssh` or the machine's `/etc/ssh`:

- `DIR/ssh/id_ed25519` is the lab's client key (generated at `up`), and each host has its
  own host key in `DIR/hosts/hN/ssh/`; `DIR/ssh/known_hosts` pins every host key, so host
  key checking stays strict (`StrictHostKeyChecking yes`, nothing is ever added to a file).
- libvirt's ssh transport (the OpenSSH binary, not libssh) takes `keyfile=` and `command=`
  from the URI but has no `known_hosts=` (that parameter is for the libssh/libssh2
  transports only).  So `command=` names `DIR/ssh/ssh`, a two-line wrapper that runs
  `/usr/bin/ssh -F DIR/ssh/ssh_config`; that config names the lab's known_hosts and key.
- Each sshd runs under `reconciler.lab.reaper` in the host's network namespace and in a
  mount namespace with the host's private `/run/libvirt`, so `virt-ssh-helper` finds that
  host's libvirtd and no other.  It outlives libvirtd restarts (the bind mounts name the
  same directories), as a site's sshd does.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from reconciler.lab.proc import LabError, alive, cmdline, read_pid, run, stop_pids, tail

SSHD = "/usr/sbin/sshd"
SSH = "/usr/bin/ssh"
SSH_PORT = 22
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it


@dataclass(frozen=True)
class LabSsh:
    """The client side: the lab's key, known_hosts, ssh config and the wrapper libvirt runs."""

    lab_dir: Path

    @property
    def dir(self) -> Path:
        return self.lab_dir / "ssh"

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def command(self) -> Path:
        """The ssh wrapper libvirt's `command=` names: the lab's config, then the arguments."""
        return self.dir / "ssh"

    def argv(self) -> list[str]:
        """ssh as the lab's client (tests, image sources): `[*argv, "root@ADDR", ...]`."""
        return [SSH, "-F", str(self.config)]

    def uri(self, addr: str, user: str = "root") -> str:
        """The Host URI: `qemu+ssh://root@ADDR/system?keyfile=…&command=…&no_tty=1`."""
        params = f"keyfile={quote(str(self.key))}&command={quote(str(self.command))}&no_tty=1"
        return f"qemu+ssh://{user}@{addr}/system?{params}"

    def create(self) -> str:
        """Generate the client key, the ssh config and the wrapper; returns the public key."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.key.exists():
            run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"volctl-lab {self.lab_dir}",
                 "-f", str(self.key)],
                timeout=30,
            )  # fmt: skip
        self.known_hosts.touch(mode=0o600)
        self.config.write_text(
            "# written by `volctl lab up`: the lab's own ssh client settings (never ~/.ssh)\n"
            "Host *\n"
            f"  IdentityFile {self.key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
            "  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 5\n"
            "  ServerAliveInterval 5\n"
            "  ServerAliveCountMax 3\n"
            "  LogLevel ERROR\n"
        )
        self.config.chmod(0o600)
        self.command.write_text(
            "#!/bin/sh\n"
            "# written by `volctl lab up`: ssh with the lab's own key and known_hosts, for\n"
            "# libvirt's qemu+ssh `command=` parameter (its ssh transport has no known_hosts=)\n"
            f'exec {SSH} -F {shlex.quote(str(self.config))} "$@"\n'
        )
        self.command.chmod(0o755)
        return self.key.with_suffix(".pub").read_text().strip()

    def trust(self, addr: str, host_pubkey: str) -> None:
        """Pin ADDR's host key in the lab's known_hosts (replacing an older line for ADDR)."""
        lines = [
            line
            for line in (
                self.known_hosts.read_text().splitlines() if self.known_hosts.exists() else []
            )
            if line.split(" ", 1)[0] != addr
        ]
        key_type, key_b64 = host_pubkey.split()[:2]
        lines.append(f"{addr} {key_type} {key_b64}")
        self.known_hosts.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class HostSshd:
    """One host's sshd: in the host's netns and mount namespace, listening on ADDR:22."""

    lab_dir: Path
    name: str
    addr: str
    netns: str
    extra_binds: tuple[str, ...] = ()  # the reaper's --bind arguments (private passwd/group)

    @property
    def host_dir(self) -> Path:
        return self.lab_dir / "hosts" / self.name

    @property
    def dir(self) -> Path:
        return self.host_dir / "ssh"

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def conf(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def pid_file(self) -> Path:
        return self.host_dir / "sshd-reaper.pid"

    def write_conf(self, authorized_key: str) -> str:
        """Host key, authorized_keys (the lab key only) and sshd_config; returns the host key."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.host_key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name,
                 "-f", str(self.host_key)], timeout=30)  # fmt: skip
        (self.dir / "authorized_keys").write_text(authorized_key + "\n")
        (self.dir / "authorized_keys").chmod(0o600)
        self.conf.write_text(
            "# written by `volctl lab up`: this lab host's sshd (root by key only)\n"
            f"ListenAddress {self.addr}:{SSH_PORT}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            # the lab dir lives under /var/tmp (mode 1777), which StrictModes refuses
            "StrictModes no\n"
            "X11Forwarding no\n"
            "AllowTcpForwarding no\n"
            "AllowAgentForwarding no\n"
            "PermitTunnel no\n"
            "PrintMotd no\n"
            "UseDNS no\n"
            "ClientAliveInterval 5\n"
            "ClientAliveCountMax 3\n"
            "MaxStartups 100:30:200\n"
            "Subsystem sftp internal-sftp\n"
        )
        return self.host_key.with_suffix(".pub").read_text().strip()

    def pid(self) -> int | None:
        """PID of this host's sshd reaper, if alive and ours."""
        pid = read_pid(self.pid_file)
        if (
            pid
            and alive(pid)
            and f"--root {self.host_dir} " in cmdline(pid)
            and SSHD in cmdline(pid)
        ):
            return pid
        return None

    def spawn(self) -> int:
        if self.pid():
            raise LabError(f"host {self.name}: sshd already running")
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        cmd = [
            sys.executable, "-m", "reconciler.lab.reaper",
            "--root", str(self.host_dir), "--hostname", self.name, *self.extra_binds,
            "--netns", self.netns, "--",
            SSHD, "-D", "-e", "-f", str(self.conf), "-E", str(self.log),
        ]  # fmt: skip
        with (self.dir / "daemon.out").open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def wait_ready(self, timeout: float = 20) -> None:
        """Wait until ADDR:22 answers with an SSH banner."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.pid():
                raise LabError(f"host {self.name}: sshd exited\n" + "\n".join(self.log_tails()))
            try:
                with socket.create_connection((self.addr, SSH_PORT), timeout=2) as s:
                    if s.recv(64).startswith(b"SSH-2.0"):
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.05)
        raise LabError(f"host {self.name}: sshd not ready after {timeout:.0f} s: {last}")

    def stop(self, grace: float = 3) -> None:
        pid = self.pid()
        if pid:
            stop_pids([pid], grace)
        with contextlib.suppress(OSError):
            self.pid_file.unlink()

    def log_tails(self) -> list[str]:
        out: list[str] = []
        for path in (self.dir / "daemon.out", self.log):
            lines = tail(path, 10)
            if lines:
                out += [f"== {path}", *lines]
        return out
