"""Mount points the lab's libvirtds need on the machine, and whether anyone still uses them.

Why: each lab host bind-mounts its private directories over /run/libvirt, /var/lib/libvirt,
/var/log/libvirt and /var/cache/libvirt inside its own mount namespace, so those paths must
exist on the machine.  When they do not (no libvirt-daemon-system installed), the lab creates
them and `lab down` removes them again, but only once no mount namespace on the machine
(another lab, or a guest that outlived its daemon) still has something mounted there.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from reconciler.lab.reaper import BIND_MOUNTS


def ensure_mountpoints() -> list[str]:
    """Create the missing mount points; returns the ones created."""
    created = []
    for _sub, target in BIND_MOUNTS:
        path = Path(target)
        if not path.exists():
            path.mkdir(parents=False)
            created.append(target)
    return created


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


def remove_mountpoints(created: list[str]) -> list[str]:
    """rmdir the mount points we created if empty and unused; returns those kept."""
    in_use = {point for _root, point in mounted_anywhere()}
    kept = []
    for target in created:
        path = Path(target)
        if target in in_use:
            kept.append(target)
            continue
        with contextlib.suppress(FileNotFoundError):
            try:
                path.rmdir()
            except OSError:
                kept.append(target)
    return kept
