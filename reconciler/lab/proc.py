"""Process and port helpers shared by the lab's components.

Why a module: every lab daemon is started by hand (no systemd) and stopped by the PID it
wrote, never by process name.  PID 1 on the machines we target may reap orphans late or
never, so "gone" must mean "no such process or a zombie" (`/proc/PID/stat` state `Z`).
Every external command the lab runs goes through `run()`, which always has a timeout, so a
wedged Ceph or libvirtd makes `lab up` fail instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from reconciler.errors import VolctlError


class LabError(VolctlError):
    """The lab could not be brought up, inspected or torn down."""

    retryable = False


def proc_state(pid: int) -> str | None:
    """The one-letter state of PID from /proc/PID/stat, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    # the command name is in parentheses and may contain spaces; the state follows ") "
    rest = raw.rsplit(")", 1)[-1].split()
    return rest[0] if rest else None


def alive(pid: int) -> bool:
    """True while PID runs; a zombie (state Z) counts as gone."""
    state = proc_state(pid)
    return state is not None and state not in ("Z", "X")


def cmdline(pid: int) -> str:
    """The NUL-joined command line as one space-separated string ('' if gone)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def read_pid(path: Path) -> int | None:
    """The PID in a pid file, or None if the file is missing or garbled."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until every PID is gone (or a zombie); returns those still alive at the deadline."""
    left = [p for p in pids if alive(p)]
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left


def signal_pid(pid: int, sig: int) -> bool:
    """Send SIG to PID if it is alive; True if it was sent."""
    if not alive(pid):
        return False
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_pids(pids: Sequence[int], grace: float) -> None:
    """SIGTERM the PIDs together, wait up to GRACE seconds, then SIGKILL the rest."""
    sent = [p for p in pids if signal_pid(p, signal.SIGTERM)]
    left = wait_gone(sent, grace)
    for p in left:
        signal_pid(p, signal.SIGKILL)
    wait_gone(left, 2.0)


def run(
    cmd: Sequence[str],
    *,
    timeout: float = 60.0,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    input_bytes: bytes | None = None,
) -> str:
    """Run CMD with a timeout; return stdout.  Raise LabError with stderr on failure."""
    try:
        res = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=env,
            input=input_bytes,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(cmd)}: timed out after {timeout:.0f} s") from exc
    except FileNotFoundError as exc:
        raise LabError(f"{cmd[0]}: not installed (run scripts/bootstrap.sh)") from exc
    if res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip().splitlines()[-15:]
        raise LabError(f"{' '.join(cmd)}: exit {res.returncode}\n" + "\n".join(err))
    return res.stdout.decode(errors="replace")


def tail(path: Path, lines: int = 15) -> list[str]:
    """The last LINES lines of a log file ([] if unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            data = fh.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-lines:]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on HOST:PORT (we can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int, start: int = 21000, stop: int = 32000) -> list[int]:
    """COUNT distinct free TCP ports on loopback, scanning from a pid-dependent offset.

    Ports below the kernel's ephemeral range so outgoing connections never take them."""
    span = stop - start
    first = start + (os.getpid() * 7919) % span
    out: list[int] = []
    for i in range(span):
        port = start + (first - start + i) % span
        if port_free(port):
            out.append(port)
            if len(out) == count:
                return out
    raise LabError(f"no {count} free ports in {start}-{stop}")


def remove_tree(path: Path) -> None:
    """rm -rf PATH, tolerating files that vanish concurrently."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    run(["rm", "-rf", "--one-file-system", str(path)], timeout=60)
