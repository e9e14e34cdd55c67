"""One controller per spec store: an flock on `<store>/.volctl-controller.lock`.

Two `volctl run` on the same store directory would both create, delete and attach for the same
desired state, racing each other's ids and detaches.  The second one is refused, with the pid
and host of the first (written into the lock file by whoever holds it).  An flock is released
by the kernel when its holder dies, so a crashed controller never leaves a stale lock behind:
the pid in the file is only information, never the lock itself.  (On NFS flock is emulated;
run one controller per store there too.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from reconciler.errors import VolctlError

LOCK_FILE = ".volctl-controller.lock"  # hidden: the store and its watcher ignore it


class StoreLocked(VolctlError):
    """Another controller holds the store."""

    retryable = False


class StoreLock:
    """Held for the life of a controller; `release()` (or process exit) frees it."""

    def __init__(self, store: str | os.PathLike[str]) -> None:
        self.path = Path(store) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> StoreLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreLocked(
                f"another controller is running on the store {self.path.parent}: {holder} "
                f"(lock file {self.path}); stop it first"
            ) from None
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode() + b"\n", 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    try:
        raw = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {int(raw['pid'])} on host {raw['host']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "pid and host unknown (it is still starting)"
