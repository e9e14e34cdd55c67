"""Run one lab host's libvirtd in a private mount + UTS namespace, as a prompt child reaper.

Why: several privileged libvirtds must coexist on one machine, each believing it owns
/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt.  This
wrapper unshares a mount and a UTS namespace, bind-mounts the host's private directories
over those paths, sets the host's hostname, and then runs libvirtd as its child.

It also sets PR_SET_CHILD_SUBREAPER and reaps at once: libvirt daemonizes qemu, and
`virDomainDestroy` polls until the qemu process is reaped.  Where PID 1 reaps only every
~2 s (or never), every destroy would otherwise take seconds.

Usage (the lab starts it; it is not a user command):
    python -m reconciler.lab.reaper --root HOSTDIR --hostname NAME [--netns NS]
        [--bind SRC=DST] -- libvirtd ARGS...
`--netns` joins a network namespace first (the lab's optional netns mode).
`--bind` adds a file bind mount, used for a private /etc/passwd + /etc/group when the
machine lacks the `libvirt-qemu` user that libvirtd resolves at start-up (it is created by
libvirt-daemon-system, which the lab does not need).
SIGTERM/SIGINT/SIGHUP are forwarded to the child; the exit status is the child's.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

# host subdirectory -> the system path it replaces inside the namespace
BIND_MOUNTS: tuple[tuple[str, str], ...] = (
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
)

MOUNTPOINT_MARK = ".volctl-lab-mountpoint"  # in mount points a lab created (hidden when mounted)

_libc = ctypes.CDLL(None, use_errno=True)


def make_mountpoint(target: str) -> bool:
    """Create TARGET (with our marker file) if it does not exist; True if created."""
    path = Path(target)
    if path.exists():
        return False
    try:
        path.mkdir()
    except FileExistsError:
        return False
    (path / MOUNTPOINT_MARK).write_text("created by volctl lab; removed by `volctl lab down`\n")
    return True


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_netns(name: str) -> None:
    """Join the network namespace /run/netns/NAME (network-namespace mode)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {name}")
    finally:
        os.close(fd)


def enter_namespace(root: Path, hostname: str, extra: list[tuple[str, str]]) -> None:
    """unshare(mount+UTS), make mounts private, bind the host dirs, set the hostname."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    binds = [(str(root / sub), target) for sub, target in BIND_MOUNTS] + extra
    for src, target in binds:
        for _attempt in range(3):  # another lab's `down` may remove an unused mount point
            make_mountpoint(target)
            if _libc.mount(src.encode(), target.encode(), None, MS_BIND, None) == 0:
                break
        else:
            _check(-1, f"bind {target}")
    socket.sethostname(hostname)


def supervise(argv: list[str]) -> int:
    """Fork+exec ARGV as our child, reap every descendant promptly, return its exit code."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")
    child = os.fork()
    if child == 0:  # pragma: no cover - replaced by exec
        try:
            os.execvp(argv[0], argv)  # noqa: S606 - argv comes from the lab, not a user
        finally:
            os._exit(127)

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.lab.reaper")
    parser.add_argument("--root", help="host dir with etc/ run/ lib/ log/ cache/")
    parser.add_argument("--hostname")
    parser.add_argument("--netns", help="join this network namespace first")
    parser.add_argument(
        "--bind", action="append", default=[], metavar="SRC=DST", help="extra bind mount"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    if args.netns:
        enter_netns(args.netns)
    if args.root:
        extra = [tuple(b.split("=", 1)) for b in args.bind]
        enter_namespace(
            Path(args.root), args.hostname or Path(args.root).name, [(s, d) for s, d in extra]
        )
    return supervise(command)


if __name__ == "__main__":
    sys.exit(main())
