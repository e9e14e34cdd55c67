"""Small builders of spec YAML text shared by the loading tests."""

from __future__ import annotations

HEAD = "apiVersion: volctl.io/v1\n"


def doc(kind: str, name: str, spec: str, meta: str = "") -> str:
    return f"{HEAD}kind: {kind}\nmetadata:\n  name: {name}\n{meta}spec:\n{spec}"


def join(*docs: str) -> str:
    return "---\n".join(docs)


SMALL = doc("InstanceType", "small", "  tid: 1\n  cpu: 1\n  ram: 512\n  disk: 1\n")
UBUNTU = doc("Image", "ubuntu", "  id: 1\n  source:\n    path: /var/lib/images/ubuntu.img\n")
BASE = join(SMALL, UBUNTU)


def host(name: str, extra: str = "", uri: str | None = None) -> str:
    return doc("Host", name, f"  uri: {uri or f'test:///{name}'}\n{extra}")


def vm(name: str, extra: str = "") -> str:
    return doc("VirtualMachine", name, f"  instanceType: small\n  image: ubuntu\n{extra}")


def volume(name: str, size: str = "1", extra: str = "") -> str:
    return doc("Volume", name, f"  size: {size}\n{extra}")


def attachment(name: str, vol: str, vm_name: str) -> str:
    return doc("VolumeAttachment", name, f"  volume: {vol}\n  vm: {vm_name}\n")
