"""Mount points the lab's libvirtds need on the machine, and whether anyone still uses them.

Why: each lab host bind-mounts its private directories over /run/libvirt, /var/lib/libvirt,
/var/log/libvirt and /var/cache/libvirt inside its own mount namespace, so those paths must
exist on the machine.  When they do not (no libvirt-daemon-system installed), the lab creates
them with a marker file inside, and `lab down` removes such marked, otherwise empty mount
points again, but only once no mount namespace on the machine (another lab, or a guest that
outlived its daemon) still has something mounted there.  The marker makes this safe across
labs: whichever lab goes down last removes them, and a directory the lab did not create is
never touched.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from reconciler.lab.reaper import BIND_MOUNTS, MOUNTPOINT_MARK, make_mountpoint


def ensure_mountpoints() -> list[str]:
    """Create the missing mount points (marked as ours); returns the ones created."""
    return [target for _sub, target in BIND_MOUNTS if make_mountpoint(target)]


def mounted_anywhere() -> set[tuple[str, str]]:
    """(root, mount point) of every mount of every mount namespace on the machine.

    `root` is the directory of the mounted filesystem that a bind mount shows, so a bind of
    a lab directory is found by either end.  One /proc read per namespace."""
    seen_ns: set[int] = set()
    points: set[tuple[str, str]] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = Path(f"/proc/{entry.name}/ns/mnt").stat().st_ino
            if ns in seen_ns:
                continue
            text = Path(f"/proc/{entry.name}/mountinfo").read_text()
        except OSError:
            continue
        seen_ns.add(ns)
        for line in text.splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.add((_unescape(fields[3]), _unescape(fields[4])))
    return points


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")


def mounts_under(prefix: Path) -> list[str]:
    """Mounts (in any namespace) whose mount point or bind source lies under PREFIX."""
    top = str(prefix).rstrip("/")
    out = set()
    for root, point in mounted_anywhere():
        for path in (root, point):
            if path == top or path.startswith(top + "/"):
                out.add(f"{root} on {point}")
    return sorted(out)


def remove_mountpoints() -> list[str]:
    """Remove the lab-made (marked, otherwise empty) mount points that no namespace uses.

    Returns the lab-made ones kept because something is still mounted there."""
    in_use = {point for _root, point in mounted_anywhere()}
    kept = []
    for _sub, target in BIND_MOUNTS:
        path = Path(target)
        try:
            entries = {p.name for p in path.iterdir()}
        except OSError:
            continue
        if entries != {MOUNTPOINT_MARK}:
            continue  # not ours, or in use
        if target in in_use:
            kept.append(target)
            continue
        with contextlib.suppress(FileNotFoundError):
            (path / MOUNTPOINT_MARK).unlink()
        with contextlib.suppress(OSError):
            path.rmdir()
    return kept
