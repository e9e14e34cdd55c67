"""What `volctl lab up` started, recorded before it starts anything.

Why a file of its own: `down` must be able to clean up after an `up` that failed or was
killed half-way, when there is no lab.json yet.  `lab-state.json` names the hosts, the Ceph
ports, the cache dir and the network-namespace subnet, so every later command finds the
processes, pid files and interfaces of this lab and of no other.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.lab.guest_image import DEFAULT_CACHE_DIR

STATE_FILE = "lab-state.json"


# the lab directory when neither --dir nor $VOLCTL_LAB_DIR says otherwise
DEFAULT_DIR = Path("/var/tmp/volctl-lab")


def default_cache_dir() -> Path:
    """$VOLCTL_LAB_CACHE or /var/cache/volctl-lab: kernel, base image, qemu caps (kept)."""
    return Path(os.environ.get("VOLCTL_LAB_CACHE", str(DEFAULT_CACHE_DIR)))


@dataclass
class LabState:
    """What `up` started, written before it starts anything (for `down`)."""

    hosts: list[str] = field(default_factory=list)
    mon_port: int = 6789
    mon_v2_port: int = 3300
    pool: str = "rbd"
    cache_dir: str = str(DEFAULT_CACHE_DIR)
    created_mountpoints: list[str] = field(default_factory=list)
    netns_subnet: int | None = None  # set in network-namespace mode (10.231.N.0/24)
    netns_dir_created: bool = False  # /run/netns did not exist before this lab
    transport: str = "unix"  # how volctl reaches the hosts: unix, tcp (netns) or ssh (netns)

    @staticmethod
    def load(lab_dir: Path) -> LabState | None:
        try:
            raw = json.loads((lab_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        return LabState(**raw)

    def save(self, lab_dir: Path) -> None:
        tmp = lab_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(lab_dir / STATE_FILE)
