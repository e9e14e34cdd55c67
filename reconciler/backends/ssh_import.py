"""Streaming an image file from another machine over SSH, straight into RBD.

Why: the seed's images lived on other machines (`user@host:/path.img`, copied with scp).
Copying them to the controller first would need local disk as large as the biggest image
and a cleanup story; instead one `ssh HOST 'stat … && exec cat …'` prints the size and then
the bytes, and `RbdStorage.import_image` writes them into the scratch image as they arrive
(all-zero 4 MiB chunks are skipped, RBD is sparse).  Nothing touches local disk.

Only raw images can be read this way: qcow2 needs random access (`qemu-img` cannot convert
from a pipe), so a qcow2 file is refused with the fix in the message.

Rules kept here: ssh never prompts (`BatchMode`) and never adds a host key to any file
(`StrictHostKeyChecking yes`); the whole stream has a deadline, enforced by killing ssh, so
an import can neither hang nor outlive its call; errors are typed (a refused host key, a
refused login or a missing file are terminal; a dropped connection is transient).
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import threading
from typing import IO, Any

from reconciler.errors import Terminal, Transient
from reconciler.payload import SshFile

CHUNK = 4 << 20
QCOW2_MAGIC = b"QFI\xfb"
SSH = "ssh"
_TERMINAL_SSH = ("Host key verification failed", "Permission denied", "No such file")


def ssh_argv(src: SshFile) -> list[str]:
    """`ssh … HOST 'stat … && exec cat …'` for SRC (the path is quoted for the remote shell)."""
    argv = [SSH, "-T", "-e", "none", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3"]  # fmt: skip
    if src.port is not None:
        argv += ["-p", str(src.port)]
    if src.identity_file is not None:
        argv += ["-i", src.identity_file, "-o", "IdentitiesOnly=yes"]
    if src.known_hosts_file is not None:
        argv += ["-o", f"UserKnownHostsFile={src.known_hosts_file}",
                 "-o", "GlobalKnownHostsFile=/dev/null"]  # fmt: skip
    path = shlex.quote(src.path)
    return [*argv, "--", src.host, f"stat -L -c %s -- {path} && exec cat -- {path}"]


class SshStream:
    """The remote file as a stream: `size` first, then `read()`; ssh is killed at the deadline.

    Use as a context manager; `close()` (or leaving the block) always reaps ssh.
    """

    def __init__(self, src: SshFile, timeout: float) -> None:
        self.src = src
        self.timeout = timeout
        self.size = 0
        self._err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._proc: subprocess.Popen[bytes] | None = None
        self._timer: threading.Timer | None = None
        self.timed_out = False
        self._first = b""

    def __enter__(self) -> SshStream:
        try:
            self._proc = subprocess.Popen(
                ssh_argv(self.src), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=self._err, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            self.close()
            raise Terminal(f"cannot run ssh for {self.src}: {exc}") from exc
        self._timer = threading.Timer(self.timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline(64)
        try:
            self.size = int(line.strip())
        except ValueError:
            err = self.failure("no size")
            self.close()
            raise err from None
        # the first chunk now, so a qcow2 file is refused before any scratch image exists
        self._first = self._read(CHUNK) if self.size else b""
        if self._first.startswith(QCOW2_MAGIC):
            self.close()
            raise Terminal(
                f"{self.src} is qcow2: an ssh source must be a raw image (qcow2 needs random "
                "access); convert it on that host with `qemu-img convert -O raw`, or import "
                "it from a local path"
            )
        return self

    def _expire(self) -> None:
        self.timed_out = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def read_chunk(self) -> bytes:
        """Up to CHUNK bytes (fewer only at the end of the stream)."""
        if self._first:
            first, self._first = self._first, b""
            return first
        return self._read(CHUNK)

    def _read(self, want: int) -> bytes:
        assert self._proc is not None
        assert self._proc.stdout is not None
        parts: list[bytes] = []
        while want:
            data = self._proc.stdout.read(want)
            if not data:
                break
            parts.append(data)
            want -= len(data)
        return b"".join(parts)

    def failure(self, what: str) -> Terminal | Transient:
        """The typed error for a stream that ended early: ssh's own words, classified."""
        code = None
        if self._proc is not None:
            try:
                code = self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._err.seek(0)
        stderr = self._err.read(4000).decode(errors="replace").strip().replace("\n", "; ")
        msg = f"ssh import of {self.src}: {what} (ssh exit {code}): {stderr or 'no message'}"
        if self.timed_out:
            return Transient(f"ssh import of {self.src}: no end within {self.timeout:.0f} s")
        if any(marker in stderr for marker in _TERMINAL_SSH) or (code not in (None, 255)):
            return Terminal(msg)  # the remote command failed: the file is not there as given
        return Transient(msg)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(timeout=10)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        self._err.close()

    def __exit__(self, *_exc: object) -> None:
        self.close()


def copy_stream(stream: SshStream, im: Any) -> None:
    """Write the stream into the image, skipping all-zero chunks; typed error if it ends early."""
    zero = bytes(CHUNK)
    offset = 0
    while offset < stream.size:
        chunk = stream.read_chunk()
        if not chunk:
            raise stream.failure(f"ended after {offset} of {stream.size} bytes")
        if chunk != zero[: len(chunk)]:
            im.write(chunk, offset)
        offset += len(chunk)
