"""Small valid spec texts shared by the source tests (test:/// hosts, no lab needed)."""

from __future__ import annotations

BASE = """\
apiVersion: volctl.io/v1
kind: Host
metadata: {name: h1}
spec: {uri: "test:///default"}
---
apiVersion: volctl.io/v1
kind: InstanceType
metadata: {name: small}
spec: {tid: 1, cpu: 1, ram: 512, disk: 1}
---
apiVersion: volctl.io/v1
kind: Image
metadata: {name: cirros}
spec: {id: 1, source: {rbd: "rbd/base@snap"}}
"""


def vm(name: str, itype: str = "small", image: str = "cirros") -> str:
    return f"""\
apiVersion: volctl.io/v1
kind: VirtualMachine
metadata: {{name: {name}}}
spec: {{instanceType: {itype}, image: {image}}}
"""


def volume(name: str, size: int = 1) -> str:
    return f"""\
apiVersion: volctl.io/v1
kind: Volume
metadata: {{name: {name}}}
spec: {{size: {size}}}
"""


def attachment(name: str, vol: str, vm_name: str) -> str:
    return f"""\
apiVersion: volctl.io/v1
kind: VolumeAttachment
metadata: {{name: {name}}}
spec: {{volume: {vol}, vm: {vm_name}}}
"""
