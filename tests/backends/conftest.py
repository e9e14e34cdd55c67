"""Fake libvirt hosts on the test:/// driver: one node file per host, fresh state per open."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.identity import Installation
from reconciler.payload import CephAccess, DomainSpec

CEPH = CephAccess(
    monitors=(("127.0.0.1", 6789),),
    auth_user="admin",
    secret_uuid="0b8f6a55-3c1d-4e0f-9b2a-5d6e7f809a1b",
)

FOREIGN_XML = """<domain type='test'>
  <name>{name}</name>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>{cpus}</vcpu>
  <os><type>hvm</type></os>
  <devices>
    <disk type='network' device='disk'>
      <source protocol='rbd' name='rbd/{name}-disk'><host name='127.0.0.1' port='6789'/></source>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
  {runstate}
</domain>"""


def node_xml(cpus: int, memory_mib: int, foreign: tuple[tuple[str, int, int, bool], ...]) -> str:
    doms = "".join(
        FOREIGN_XML.format(
            name=n,
            cpus=c,
            mem=m,
            runstate=""
            if running
            else "<test:runstate xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
            "5</test:runstate>",
        )
        for n, c, m, running in foreign
    )
    return (
        "<node><cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets>"
        f"<cores>{cpus}</cores><threads>1</threads><active>{cpus}</active></cpu>"
        f"<memory>{memory_mib * 1024}</memory>{doms}</node>"
    )


# the installation the fake hosts' hypervisors belong to (pool "rbd", as CEPH's)
INSTALLATION = Installation("test-installation", "rbd")

HostFactory = Callable[..., LibvirtHypervisor]


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator[HostFactory]:
    made: list[LibvirtHypervisor] = []

    def make(
        name: str = "h1",
        cpus: int = 8,
        memory_mib: int = 16384,
        foreign: tuple[tuple[str, int, int, bool], ...] = (),
        **kwargs: object,
    ) -> LibvirtHypervisor:
        path = tmp_path / f"{name}.xml"
        path.write_text(node_xml(cpus, memory_mib, foreign))
        kwargs.setdefault("installation", lambda: INSTALLATION)
        hv = LibvirtHypervisor(name, f"test://{path}", **kwargs)  # type: ignore[arg-type]
        made.append(hv)
        return hv

    yield make
    for hv in made:
        hv.close()


def spec(name: str = "vm1", vmid: int = 1, spec_hash: str = "h1", **kw: object) -> DomainSpec:
    fields: dict[str, object] = {
        "name": name,
        "vmid": vmid,
        "spec_hash": spec_hash,
        "vcpus": 2,
        "memory_mib": 512,
        "root_image": f"rbd/vm-{name}-root",
        "console_log": f"/tmp/volctl-test-{name}.log",
        "ceph": CEPH,
    }
    fields.update(kw)
    return DomainSpec(**fields)  # type: ignore[arg-type]
