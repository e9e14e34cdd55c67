"""Ceph probes for `volctl doctor`: can the configured cephx user do what volctl needs?

Why probes and not a caps lookup: reading a user's caps needs `auth` rights that a
least-privilege user (`profile rbd`) does not have, and caps strings are hard to evaluate
anyway (profiles, pool and namespace restrictions).  So each capability is *proven* on a
scratch image `volctl-doctor-<random>` in the pool, exactly the calls the controller and
qemu's librbd make: create, image-meta, the exclusive lock, snapshot + protect + clone,
blocklisting (how a dead lock holder is fenced), and remove.  The scratch image is removed
again whatever happened; it carries no volctl ownership mark, so the controller never adopts
it.  Every call is bounded (rados op timeouts), so a sick cluster gives a failed check, not a
hung doctor.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import rados
import rbd

SCRATCH_PREFIX = "volctl-doctor-"
# blocklisting a documentation address (RFC 5737) for one second proves the mon cap that
# fencing needs without fencing anyone
BLOCKLIST_PROBE_ADDR = "192.0.2.1:0/1"


class ProbeError(Exception):
    """A probe failed; the message says what happened in the library's words."""


def _why(exc: BaseException) -> str:
    if isinstance(exc, rados.PermissionError | rbd.PermissionError):
        return f"permission denied ({exc})"
    return f"{type(exc).__name__}: {exc}"


class CephProbe:
    """One connection as USER; methods raise ProbeError.  Use as a context manager."""

    def __init__(self, conf: str, user: str, pool: str, timeout: float = 10.0) -> None:
        self.conf = conf
        self.user = user
        self.pool = pool
        self.timeout = timeout
        self.scratch = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:10]}"
        self._cluster: Any = None
        self._io: Any = None
        self._made: list[str] = []  # images to remove on close (clone first)

    def __enter__(self) -> CephProbe:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def connect(self) -> str:
        """Reach the monitors and authenticate; returns the cluster fsid."""
        if not Path(self.conf).is_file():
            raise ProbeError(f"{self.conf}: no such Ceph conf")
        secs = str(int(max(1, self.timeout)))
        try:
            cluster = rados.Rados(
                conffile=self.conf,
                rados_id=self.user,
                conf={"rados_osd_op_timeout": secs, "rados_mon_op_timeout": secs},
            )
        except rados.Error as exc:
            raise ProbeError(_why(exc)) from exc
        try:
            cluster.connect(timeout=int(max(1, self.timeout)))
        except rados.Error as exc:
            cluster.shutdown()
            raise ProbeError(_why(exc)) from exc
        self._cluster = cluster
        return str(cluster.get_fsid())

    def open_pool(self) -> None:
        try:
            if not self._cluster.pool_exists(self.pool):
                raise ProbeError(f"pool {self.pool!r} does not exist")
            self._io = self._cluster.open_ioctx(self.pool)
            self._io.set_namespace("")
        except rados.Error as exc:
            raise ProbeError(_why(exc)) from exc

    def _image(self, name: str) -> Any:
        return rbd.Image(self._io, name)

    def create(self) -> None:
        features = rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
        try:
            rbd.RBD().create(self._io, self.scratch, 4 << 20, old_format=False, features=features)
        except (rados.Error, rbd.Error) as exc:
            raise ProbeError(_why(exc)) from exc
        self._made.append(self.scratch)

    def meta(self) -> None:
        try:
            with self._image(self.scratch) as img:
                img.metadata_set("volctl.io/doctor", "probe")
                if img.metadata_get("volctl.io/doctor") != "probe":
                    raise ProbeError("image-meta did not read back what was written")
                img.metadata_remove("volctl.io/doctor")
        except (rados.Error, rbd.Error) as exc:
            raise ProbeError(_why(exc)) from exc

    def lock(self) -> None:
        """Take and release the exclusive lock, as qemu's librbd does on every open."""
        try:
            with self._image(self.scratch) as img:
                img.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
                img.lock_release()
        except (rados.Error, rbd.Error) as exc:
            raise ProbeError(_why(exc)) from exc

    def clone(self) -> None:
        """Snapshot, protect, clone (how every VM's root disk is made), then undo it all."""
        child = f"{self.scratch}-clone"
        try:
            with self._image(self.scratch) as img:
                img.create_snap("base")
                img.protect_snap("base")
            rbd.RBD().clone(
                self._io, self.scratch, "base", self._io, child, features=rbd.RBD_FEATURE_LAYERING
            )
            self._made.insert(0, child)
            rbd.RBD().remove(self._io, child)
            self._made.remove(child)
            with self._image(self.scratch) as img:
                img.unprotect_snap("base")
                img.remove_snap("base")
        except (rados.Error, rbd.Error) as exc:
            raise ProbeError(_why(exc)) from exc

    def blocklist(self) -> None:
        """`osd blocklist add` (what breaks a dead client's lock) on a harmless address."""
        cmd = {"prefix": "osd blocklist", "blocklistop": "add", "addr": BLOCKLIST_PROBE_ADDR,
               "expire": 1.0}  # fmt: skip
        try:
            ret, _out, err = self._cluster.mon_command(
                json.dumps(cmd), b"", timeout=int(max(1, self.timeout))
            )
        except rados.Error as exc:
            raise ProbeError(_why(exc)) from exc
        if ret != 0:
            raise ProbeError(f"{err.strip() or 'refused'} (ret {ret})")

    def remove(self) -> None:
        try:
            rbd.RBD().remove(self._io, self.scratch)
        except (rados.Error, rbd.Error) as exc:
            raise ProbeError(_why(exc)) from exc
        self._made.remove(self.scratch)

    def close(self) -> None:
        """Remove what the probe made (best effort, e.g. after a failed clone), disconnect."""
        for name in list(self._made):
            with contextlib.suppress(rados.Error, rbd.Error):
                with self._image(name) as img:
                    for snap in img.list_snaps():
                        with contextlib.suppress(rados.Error, rbd.Error):
                            img.unprotect_snap(snap["name"])
                        img.remove_snap(snap["name"])
                rbd.RBD().remove(self._io, name)
        self._made.clear()
        if self._io is not None:
            self._io.close()
        if self._cluster is not None:
            self._cluster.shutdown()
        self._io = self._cluster = None


def controller_key(conf: str, user: str) -> bytes:
    """USER's raw cephx key, from the keyring the Ceph conf points librados at (for
    `volctl doctor --fix-secrets`).  Never print or log it."""
    import base64  # noqa: PLC0415 - next to the only place the key is decoded

    try:
        cluster = rados.Rados(conffile=conf, rados_id=user)
        paths = str(cluster.conf_get("keyring") or "")
        cluster.shutdown()
    except rados.Error as exc:
        raise ProbeError(f"{conf}: {_why(exc)}") from exc
    entity = f"client.{user}"
    for raw in paths.split(","):
        path = Path(raw.strip())
        if not raw.strip() or not path.is_file():
            continue
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read(path)
        except (configparser.Error, OSError):
            continue
        if parser.has_option(entity, "key"):
            return base64.b64decode(parser.get(entity, "key").strip())
    raise ProbeError(f"no keyring with a key for {entity} (looked in: {paths})")
