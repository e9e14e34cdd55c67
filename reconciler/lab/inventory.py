"""What `volctl lab up` tells volctl about the lab: an inventory of specs and a config.

Why: the lab is only useful if volctl can be pointed at it with one flag or variable.  The
inventory is ordinary volctl YAML (Host, Image and the seed's three InstanceType documents),
so `volctl validate -f DIR/inventory.yaml` and `volctl apply` treat it like any user spec;
the config says where Ceph is (conf, pool, user, secret uuid, monitors) and where volctl keeps
its state.  Neither file holds a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from reconciler.model import API_VERSION

# capacity advertised for every lab host.  An overcommit on purpose: all hosts share one
# 2-core machine, and tests want to place many small TCG guests on each host.
HOST_CPU = 16
HOST_RAM_MIB = 16384
# The lab forces TCG: this machine's /dev/kvm (where there is one) may be a nested or
# paravirtual KVM that libvirt offers but stock guest kernels hang on (lab notes).
HOST_VIRT_TYPE = "qemu"
BASE_IMAGE_NAME = "lab-base"
INSTANCE_TYPES = (
    ("small", 1, 1, 512, 1),
    ("medium", 2, 2, 1024, 2),
    ("large", 3, 4, 2048, 3),
)  # name, tid, cpu, ram MiB, disk GiB (the seed's vm_types)


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def inventory_docs(hosts: Sequence[tuple[str, str]], base_image: str) -> list[dict[str, Any]]:
    """Host documents (name, uri) with pmid 1..N, the base Image and the three types."""
    docs = [
        _doc(
            "Host",
            name,
            {
                "uri": uri,
                "pmid": i,
                "virtType": HOST_VIRT_TYPE,
                "capacity": {"cpu": HOST_CPU, "ramMiB": HOST_RAM_MIB},
            },
        )
        for i, (name, uri) in enumerate(hosts, start=1)
    ]
    docs.append(_doc("Image", BASE_IMAGE_NAME, {"id": 1, "source": {"rbd": base_image}}))
    docs += [
        _doc("InstanceType", name, {"tid": tid, "cpu": cpu, "ram": ram, "disk": disk})
        for name, tid, cpu, ram, disk in INSTANCE_TYPES
    ]
    return docs


def write_inventory(path: Path, hosts: Sequence[tuple[str, str]], base_image: str) -> None:
    header = (
        "# Written by `volctl lab up`: the lab's hosts, its base image and the seed's\n"
        f"# instance types.  Host capacity (cpu {HOST_CPU}, ramMiB {HOST_RAM_MIB}) is an\n"
        "# overcommit: every lab host shares this one machine.  virtType qemu (TCG): this\n"
        "# machine's KVM, if any, is not trusted to boot guests.\n"
    )
    body = yaml.safe_dump_all(inventory_docs(hosts, base_image), sort_keys=False)
    path.write_text(header + body)


def config_doc(
    *,
    lab_dir: Path,
    ceph_conf: Path,
    pool: str,
    user: str,
    secret_uuid: str,
    monitors: Sequence[tuple[str, int]],
    listen: str = "127.0.0.1:8470",
    state_root: Path | None = None,
) -> dict[str, Any]:
    """A volctl config (see reconciler/config.py) pointing at the lab."""
    root = state_root or lab_dir
    return {
        "api": f"http://{listen}",
        "listen": listen,
        "store": str(root / "store"),
        "stateDir": str(root / "state"),
        "consoleDir": str(root / "consoles"),
        "ceph": {
            "conf": str(ceph_conf),
            "pool": pool,
            "user": user,
            "secretUUID": secret_uuid,
            "monitors": [f"{host}:{port}" for host, port in monitors],
        },
    }


def write_config(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(
        "# Written by `volctl lab up`: point volctl at the lab with\n"
        f"#   export VOLCTL_CONFIG={path}\n" + yaml.safe_dump(doc, sort_keys=False)
    )


def set_store(path: Path, store: str) -> None:
    """Point the lab config's `store:` at a directory or at rados://POOL/NAMESPACE."""
    text = path.read_text()
    doc = yaml.safe_load(text)
    if doc.get("store") == store:
        return
    doc["store"] = store
    head = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    path.write_text(head + yaml.safe_dump(doc, sort_keys=False))
