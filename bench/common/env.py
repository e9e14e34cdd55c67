"""The environment a result was measured in, recorded next to every figure.

Absolute times on a shared 2-core machine are noise; they only mean something together with
the versions of the software that did the work and the machine it ran on.  Every benchmark
stores `environment()` in its JSON so a figure can always be traced back to its setup.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0].strip() if text else None


def _dist(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_head() -> str | None:
    line = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(REPO), "status", "--porcelain", "--", "reconciler"])
    if line and dirty:
        return line + "+dirty"
    return line


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _mem_total_mib() -> int | None:
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    except OSError:
        return None
    return int(m.group(1)) // 1024 if m else None


def environment() -> dict[str, Any]:
    """Versions of every piece of software that does work in a benchmark, and the machine."""
    ansible = _first_line([str(VENV_BIN / "ansible"), "--version"])
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total_mib": _mem_total_mib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "volctl_commit": _git_head(),
        "libvirt": _first_line(["libvirtd", "--version"]),
        "libvirt_python": _dist("libvirt-python"),
        "qemu": _first_line(["qemu-system-x86_64", "--version"]),
        "ceph": _first_line(["ceph", "--version"]),
        "ansible": _dist("ansible"),
        "ansible_core": ansible,
        "community_libvirt": _collection_version("community/libvirt"),
        "kcli": _dist("kcli"),
        "wrk": _first_line(["wrk", "--version"]),
        "git": _first_line(["git", "--version"]),
        "load_avg_at_start": list(os.getloadavg()),  # when the report was created
    }


def _collection_version(path: str) -> str | None:
    try:
        collections = importlib.import_module("ansible_collections")
    except ImportError:
        return None
    for base in collections.__path__:
        manifest = Path(base) / path / "MANIFEST.json"
        if manifest.is_file():
            m = re.search(r'"version":\s*"([^"]+)"', manifest.read_text())
            return m.group(1) if m else None
    return None
