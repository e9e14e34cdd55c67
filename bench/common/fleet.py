"""The one workload every tool must produce: N VMs, each with a root clone and one volume.

B1 and B2 compare tools only if they do the same work, so the workload is defined once here
and rendered for each tool: volctl YAML documents, and for the peer tools the very domain
XML volctl itself would define (`reconciler.backends.domxml.render_domain`, with volctl's
ownership <metadata> removed, because a peer tool does not own anything for volctl).  RBD
image names follow `reconciler.identity`, so the end-state check is the same for every tool.
VMs are spread round-robin over the hosts and pinned there, so every tool places the same VM
on the same host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from bench.common.lab import Lab
from reconciler.backends.domxml import render_disk, render_domain
from reconciler.identity import root_disk_name, volume_image_name
from reconciler.lab.inventory import HOST_VIRT_TYPE
from reconciler.payload import CephAccess, DiskSpec, DomainSpec

GIB = 1024**3


@dataclass(frozen=True)
class VMWork:
    name: str  # domain name and volctl VirtualMachine name
    host: str  # lab host name
    uri: str
    root_image: str  # RBD image name (no pool)
    volume: str  # volctl Volume name
    volume_image: str  # RBD image name (no pool)
    target: str = "vdb"


@dataclass(frozen=True)
class Fleet:
    lab: Lab
    vms: tuple[VMWork, ...]
    prefix: str
    cpu: int
    ram_mib: int
    disk_gib: int
    volume_gib: int
    console_dir: str

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(sorted({v.host for v in self.vms}))

    @property
    def parent(self) -> str:
        """The base image snapshot every root disk is cloned from, "pool/image@snap"."""
        return self.lab.info.base_image

    @property
    def ceph(self) -> CephAccess:
        info = self.lab.info
        return CephAccess(
            monitors=tuple(info.monitors),
            auth_user=info.ceph_user,
            secret_uuid=info.secret_uuid,
            pool=info.pool,
        )

    def by_host(self) -> dict[str, list[VMWork]]:
        out: dict[str, list[VMWork]] = {h: [] for h in self.hosts}
        for v in self.vms:
            out[v.host].append(v)
        return out

    def domain_xml(self, vm: VMWork) -> str:
        """The XML volctl would define, without volctl's ownership mark."""
        spec = DomainSpec(
            name=vm.name,
            vmid=0,
            spec_hash="peer",
            vcpus=self.cpu,
            memory_mib=self.ram_mib,
            root_image=f"{self.lab.info.pool}/{vm.root_image}",
            console_log=f"{self.console_dir.rstrip('/')}/{vm.name}.log",
            ceph=self.ceph,
        )
        xml = render_domain(spec)
        return re.sub(r"<metadata>.*?</metadata>", "", xml, flags=re.S)

    def disk_xml(self, vm: VMWork) -> str:
        return render_disk(
            DiskSpec(
                rbd_image=f"{self.lab.info.pool}/{vm.volume_image}",
                target=vm.target,
                serial=f"vol-{vm.volume}",
                ceph=self.ceph,
            )
        )

    def volctl_documents(self) -> list[dict[str, Any]]:
        """Hosts, the image, the instance type and the fleet, as volctl documents."""
        info = self.lab.info
        docs: list[dict[str, Any]] = []

        def doc(kind: str, name: str, spec: dict[str, Any]) -> None:
            docs.append(
                {
                    "apiVersion": "volctl.io/v1",
                    "kind": kind,
                    "metadata": {"name": name},
                    "spec": spec,
                }
            )

        for n, h in enumerate(info.hosts, start=1):
            # capacity is declared so placement never refuses a pinned VM on a 2-core lab; TCG
            # as in the lab's own inventory (this machine's /dev/kvm cannot run guests)
            doc(
                "Host",
                h.name,
                {
                    "uri": h.uri,
                    "pmid": 900 + n,
                    "virtType": HOST_VIRT_TYPE,
                    "capacity": {"cpu": 256, "ramMiB": 1024 * 1024},
                },
            )
        doc("Image", f"{self.prefix}-base", {"id": 900, "source": {"rbd": info.base_image}})
        doc(
            "InstanceType",
            f"{self.prefix}-type",
            {"tid": 900, "cpu": self.cpu, "ram": self.ram_mib, "disk": self.disk_gib},
        )
        for vm in self.vms:
            doc(
                "VirtualMachine",
                vm.name,
                {
                    "instanceType": f"{self.prefix}-type",
                    "image": f"{self.prefix}-base",
                    "host": vm.host,
                },
            )
            doc("Volume", vm.volume, {"size": self.volume_gib, "reclaimPolicy": "Delete"})
            doc("VolumeAttachment", vm.volume, {"volume": vm.volume, "vm": vm.name})
        return docs

    def volctl_yaml(self) -> str:
        return yaml.safe_dump_all(self.volctl_documents(), sort_keys=False)


def make_fleet(
    lab: Lab,
    n: int,
    hosts: int,
    *,
    prefix: str = "bench",
    cpu: int = 1,
    ram_mib: int = 256,
    disk_gib: int = 1,
    volume_gib: int = 1,
    console_dir: str = "/var/log/libvirt/qemu",
) -> Fleet:
    labhosts = lab.info.hosts[:hosts]
    if len(labhosts) < hosts:
        raise SystemExit(f"the lab has {len(lab.info.hosts)} hosts, {hosts} requested")
    vms = []
    width = max(2, len(str(n - 1)))
    for i in range(n):
        h = labhosts[i % len(labhosts)]
        name = f"{prefix}-{i:0{width}d}"
        vol = f"{name}-data"
        vms.append(
            VMWork(
                name=name,
                host=h.name,
                uri=h.uri,
                root_image=root_disk_name(name),
                volume=vol,
                volume_image=volume_image_name(vol),
            )
        )
    return Fleet(
        lab=lab,
        vms=tuple(vms),
        prefix=prefix,
        cpu=cpu,
        ram_mib=ram_mib,
        disk_gib=disk_gib,
        volume_gib=volume_gib,
        console_dir=console_dir,
    )
