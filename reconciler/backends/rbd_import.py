"""Getting a local image file into RBD: qcow2 to raw conversion and a sparse copy.

Kept apart from `rbd_backend` because it is plain file handling (plus `qemu-img`), not
cluster logic; `RbdStorage.import_image` runs it on a worker thread under its deadline.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

from reconciler.errors import Terminal

_CHUNK = 4 << 20
_QCOW2_MAGIC = b"QFI\xfb"


class raw_source:  # noqa: N801 - a context manager that reads like a function
    """The file itself if raw, else a temporary raw conversion made with qemu-img."""

    def __init__(self, src: Path, timeout: float) -> None:
        self.src = src
        self.timeout = timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        with self.src.open("rb") as f:
            magic = f.read(4)
        if magic != _QCOW2_MAGIC:
            return self.src
        self._tmp = tempfile.TemporaryDirectory(prefix="volctl-import-", dir="/var/tmp")
        out = Path(self._tmp.name) / "image.raw"
        try:
            subprocess.run(
                ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(self.src), str(out)],
                check=True,
                capture_output=True,
                timeout=self.timeout,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise Terminal(f"cannot convert {self.src} to raw: {exc}") from exc
        return out

    def __exit__(self, *_exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def copy_sparse(src: Path, im: Any) -> None:
    """Write the file into the image in chunks, skipping all-zero chunks (RBD is sparse)."""
    zero = bytes(_CHUNK)
    with src.open("rb") as f:
        offset = 0
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            if chunk != zero[: len(chunk)]:
                im.write(chunk, offset)
            offset += len(chunk)
