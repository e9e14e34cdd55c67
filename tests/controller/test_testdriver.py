"""The controller against real libvirt connections on the test:/// driver (several fake hosts).

The hosts are libvirt's test driver with custom node files (capacity, foreign domains); the
backend is the real `LibvirtHypervisor`; storage is the in-memory pool (the test driver has
no RBD).  Assertions read libvirt itself through the backend's own connection (a test:///
file gives every connection private state).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.identity import XMLNS
from reconciler.status.types import Phase
from tests.execute.fakeworld import FakeStorage

from .harness import Harness, build, spec

FOREIGN = """<domain type='test'><name>{name}</name><memory unit='MiB'>{mem}</memory>
<vcpu>{cpu}</vcpu><os><type>hvm</type></os></domain>"""


def node(cpus: int, mem_mib: int, foreign: tuple[tuple[str, int, int], ...] = ()) -> str:
    doms = "".join(FOREIGN.format(name=n, cpu=c, mem=m) for n, c, m in foreign)
    return (
        "<node><cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets>"
        f"<cores>{cpus}</cores><threads>1</threads><active>{cpus}</active></cpu>"
        f"<memory>{mem_mib * 1024}</memory>{doms}</node>"
    )


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[dict[str, LibvirtHypervisor]]:
    """h1: 2 CPUs; h2: 2 CPUs with a running foreign domain of 1 CPU; h3: 4 CPUs."""
    layout = {"h1": (2, 2048, ()), "h2": (2, 2048, (("legacy-db", 1, 512),)), "h3": (4, 4096, ())}
    made: dict[str, LibvirtHypervisor] = {}
    for name, (cpu, mem, foreign) in layout.items():
        path = tmp_path / f"{name}.xml"
        path.write_text(node(cpu, mem, foreign))
        made[name] = LibvirtHypervisor(
            name, f"test://{path}", timeout=5.0, installation=FakeStorage().installation
        )
    yield made
    for hv in made.values():
        hv.close()


def uris(hosts: dict[str, LibvirtHypervisor]) -> dict[str, str]:
    return {n: hv.uri for n, hv in hosts.items()}


def domains(hv: LibvirtHypervisor) -> dict[str, bool]:
    """name -> running, read from libvirt."""
    conn = hv.libvirt_connection()
    return {d.name(): bool(d.isActive()) for d in conn.listAllDomains()}


def ours(hv: LibvirtHypervisor, name: str) -> bool:
    xml = hv.libvirt_connection().lookupByName(name).XMLDesc(0)
    return XMLNS in xml


def storage() -> FakeStorage:
    s = FakeStorage()
    s.add_base("base")
    return s


def test_placement_capacity_and_foreign_domains(
    hosts: dict[str, LibvirtHypervisor], harnesses: list[Harness]
) -> None:
    vms = {f"vm{i}": None for i in range(1, 7)}
    vms["pinned"] = "h3"
    h = build(hosts, storage(), spec(uris(hosts), vms=vms))
    harnesses.append(h)
    snap = h.engine.run_pass().snapshot
    # first fit in pmid order: h1 takes 2, h2 only 1 (its foreign domain uses a CPU),
    # h3 takes the pinned VM and 3 more; 7 small VMs need 7 CPUs, 7 are free: all fit
    placed = {n: h for h in hosts for n in domains(hosts[h])}
    assert {k for k, v in placed.items() if v == "h1"} == {"vm1", "vm2"}
    assert {k for k, v in placed.items() if v == "h2"} == {"legacy-db", "vm3"}
    assert {k for k, v in placed.items() if v == "h3"} == {"pinned", "vm4", "vm5", "vm6"}
    assert all(domains(hosts[h])[n] for n, h in placed.items())
    assert not ours(hosts["h2"], "legacy-db")
    assert snap.converged
    assert snap.hosts["h2"].cpu_used_foreign == 1
    assert snap.hosts["h2"].domains_foreign == 1
    assert snap.resources["vm/vm3"].host == "h2"
    assert snap.resources["vm/vm3"].pmid == 2

    # one more VM does not fit anywhere: Unschedulable, nothing else disturbed
    vms["vm7"] = None
    h.source.set(spec(uris(hosts), vms=vms))
    snap = h.engine.run_pass().snapshot
    vm7 = snap.resources["vm/vm7"]
    assert vm7.phase is Phase.UNSCHEDULABLE
    assert vm7.last_error is not None
    assert "Unschedulable" in [e.reason for e in vm7.events]
    assert not snap.converged
    assert "vm7" not in {n for hv in hosts.values() for n in domains(hv)}
    assert snap.resources["vm/vm1"].phase is Phase.READY

    # removing VMs deletes ours (under the mass-delete share) and leaves the foreign one
    for gone in ("vm1", "vm3", "vm7"):
        del vms[gone]
    h.source.set(spec(uris(hosts), vms=vms))
    snap = h.engine.run_pass().snapshot
    assert snap.converged, snap.resources
    assert domains(hosts["h1"]) == {"vm2": True}
    assert domains(hosts["h2"]) == {"legacy-db": True}
    assert set(domains(hosts["h3"])) == {"pinned", "vm4", "vm5", "vm6"}
    assert "vm-vm1-root" not in h.storage.images  # type: ignore[attr-defined]


def test_mass_delete_guard_keeps_everything(
    hosts: dict[str, LibvirtHypervisor], harnesses: list[Harness]
) -> None:
    h = build(hosts, storage(), spec(uris(hosts), vms={"a": None, "b": None, "c": None}))
    harnesses.append(h)
    assert h.engine.run_pass().snapshot.converged
    h.source.set(spec(uris(hosts), vms={}))  # e.g. a truncated spec directory
    snap = h.engine.run_pass().snapshot
    assert not snap.converged
    assert set(domains(hosts["h1"])) == {"a", "b"}
    assert "c" in domains(hosts["h2"])
    assert {snap.resources[f"vm/{n}"].phase for n in "abc"} == {Phase.BLOCKED}


def test_drift_a_domain_removed_behind_our_back_is_recreated(
    hosts: dict[str, LibvirtHypervisor], harnesses: list[Harness]
) -> None:
    h = build(hosts, storage(), spec(uris(hosts), vms={"a": None, "b": None}), resync=0.3)
    harnesses.append(h)
    h.start()
    h.converged()
    dom = hosts["h1"].libvirt_connection().lookupByName("a")
    dom.destroy()
    dom.undefine()
    assert "a" not in domains(hosts["h1"])
    t0 = time.monotonic()
    snap = h.wait(
        lambda s: (
            s.converged and s.metrics.drift_corrections_total > 0 and "a" in domains(hosts["h1"])
        )
    )
    elapsed = time.monotonic() - t0
    assert domains(hosts["h1"])["a"] is True
    assert ours(hosts["h1"], "a")
    assert "DriftCorrected" in [e.reason for e in snap.resources["vm/a"].events]
    assert elapsed < 20  # repaired by the running loop, generous for a loaded machine
    assert snap.resources["vm/a"].ids["vmid"] == 1  # the same identity as before


def test_unreachable_host_is_unknown_and_nothing_moves(
    hosts: dict[str, LibvirtHypervisor], harnesses: list[Harness], tmp_path: Path
) -> None:
    desired_uris = uris(hosts)
    desired_uris["h4"] = "test:///nonexistent/host.xml"
    h = build(hosts, storage(), spec(desired_uris, vms={"a": "h1", "b": "h4"}))
    harnesses.append(h)
    snap = h.engine.run_pass().snapshot
    assert snap.resources["host/h4"].phase is Phase.UNKNOWN
    assert not snap.hosts["h4"].reachable
    assert snap.resources["vm/b"].phase is Phase.UNKNOWN  # pinned to the unknown host
    assert "b" not in {n for hv in hosts.values() for n in domains(hv)}
    assert domains(hosts["h1"]) == {"a": True}
    assert not snap.converged
