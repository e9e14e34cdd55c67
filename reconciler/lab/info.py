"""What a running lab offers to its users: the CLI, the demo and the test fixtures.

`volctl lab up` writes this as `lab.json` in the lab directory; `LabInfo.load(dir)` reads it
back.  It holds paths and addresses only, never a key (keys stay in the keyring file and in
each host's libvirt secret).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabHost:
    name: str  # "h1"
    uri: str  # libvirt URI reachable from the root namespace
    pid: int  # the host's libvirtd (or its reaper wrapper)


@dataclass(frozen=True)
class LabInfo:
    dir: str
    hosts: tuple[LabHost, ...]
    ceph_conf: str  # conf whose [client] section finds ROOT/ceph.client.$id.keyring
    pool: str
    ceph_user: str  # cephx id volctl and the guests use: "volctl" (mon/osd 'profile rbd')
    secret_uuid: str  # libvirt secret with the cephx key, defined on every host
    monitors: tuple[tuple[str, int], ...]
    base_image: str  # "pool/image@snap": the bootable base image, protected snapshot
    base_image_file: str  # the raw file it was imported from (for Image.source.path tests)
    config_path: str  # a volctl config pointing at this lab
    inventory_path: str  # YAML: Host + Image + the seed's three InstanceType documents
    netns: bool = False  # hosts in own network namespaces (uri is qemu+tcp); cut/heal links
    admin_user: str = "admin"  # cephx id for the lab's own administration (pools, users)

    @staticmethod
    def load(lab_dir: str | Path) -> LabInfo:
        raw = json.loads((Path(lab_dir) / "lab.json").read_text())
        raw["hosts"] = tuple(LabHost(**h) for h in raw["hosts"])
        raw["monitors"] = tuple((str(h), int(p)) for h, p in raw["monitors"])
        return LabInfo(**raw)

    def save(self) -> None:
        path = Path(self.dir) / "lab.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
