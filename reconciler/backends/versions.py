"""Versions of the software volctl talks to, for `volctl version`.

Only backends may import the libvirt and rados bindings, so the look-ups live here.  Every
remote look-up is bounded (a host or a monitor that does not answer is reported, not waited
for) and never raises: a version that cannot be read is shown with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import libvirt
import rados

from reconciler.backends.calls import Worker


def _dotted(number: int) -> str:
    """libvirt's 1000000*major + 1000*minor + release -> "major.minor.release"."""
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def libvirt_library() -> str:
    """The libvirt library this process is linked against."""
    return _dotted(int(libvirt.getVersion()))


def librados_library() -> str:
    """The librados API version this process is linked against (not the cluster's)."""
    handle = rados.Rados(conffile=None)
    try:
        return str(handle.version())  # a rados.Version, printed "major.minor.extra"
    finally:
        handle.shutdown()


def libvirt_daemon(uri: str, *, timeout: float = 10.0) -> str:
    """The libvirtd (or virtqemud) version at `uri`, or "unreachable: reason"."""

    def ask() -> str:
        conn = libvirt.openReadOnly(uri)
        try:
            return _dotted(int(conn.getLibVersion()))
        finally:
            conn.close()

    return _bounded(ask, timeout, f"libvirt {uri}")


def ceph_cluster(conf: str, user: str, *, timeout: float = 10.0) -> str:
    """The version the monitors report (`ceph version`), or "unreachable: reason"."""

    def ask() -> str:
        cluster = rados.Rados(conffile=conf, rados_id=user)
        cluster.connect(timeout=int(max(1, timeout)))
        try:
            cmd = json.dumps({"prefix": "version", "format": "json"})
            ret, out, err = cluster.mon_command(cmd, b"", timeout=int(max(1, timeout)))
            if ret != 0:
                return f"unknown: {err or ret}"
            return str(json.loads(out).get("version", "unknown"))
        finally:
            cluster.shutdown()

    return _bounded(ask, timeout, f"ceph {conf}")


def _bounded(fn: Callable[[], str], timeout: float, what: str) -> str:
    worker = Worker("version", threads=1)
    try:
        return worker.run(fn, timeout=timeout, what=what)
    except Exception as exc:  # noqa: BLE001 - any failure is shown, never raised
        return f"unreachable: {exc}"
    finally:
        worker.close()
