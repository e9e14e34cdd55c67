"""The Observer: hosts and storage in parallel, each bounded by one deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.backends.rbd_backend import RbdStorage
from reconciler.observe.observer import Observer
from tests.backends.conftest import INSTALLATION, node_xml, spec
from tests.backends.hung import silent_unix_socket


@pytest.fixture
def dead_storage(tmp_path: Path) -> Iterator[RbdStorage]:
    conf = tmp_path / "dead.conf"
    conf.write_text("[global]\nmon host = 127.0.0.1:9\nauth client required = none\n")
    s = RbdStorage(str(conf), connect_timeout=1, timeout=1)
    yield s
    s.close()


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[dict[str, LibvirtHypervisor]]:
    out = {}
    for i in range(3):
        path = tmp_path / f"h{i}.xml"
        path.write_text(node_xml(4 + i, 8192, (("foreign", 1, 512, True),)))
        out[f"h{i}"] = LibvirtHypervisor(
            f"h{i}", f"test://{path}", installation=lambda: INSTALLATION
        )
    out["h0"].define(spec("vm-a"))
    yield out
    for hv in out.values():
        hv.close()


def test_world_has_every_host_and_storage_reason(
    hosts: dict[str, LibvirtHypervisor], dead_storage: RbdStorage
) -> None:
    world = Observer(hosts, dead_storage, timeout=10).observe()
    assert set(world.hosts) == {"h0", "h1", "h2"}
    assert world.all_hosts_known
    assert [h.cpus for h in world.hosts.values()] == [4, 5, 6]
    assert world.hosts["h0"].domain("vm-a").ours  # type: ignore[union-attr]
    assert not world.hosts["h1"].domain("foreign").ours  # type: ignore[union-attr]
    assert not world.storage.reachable
    assert world.storage.reason


def test_a_hung_host_is_unknown_and_does_not_hold_up_the_others(
    hosts: dict[str, LibvirtHypervisor], dead_storage: RbdStorage, tmp_path: Path
) -> None:
    with silent_unix_socket(str(tmp_path / "sock")) as sock:
        hung = LibvirtHypervisor(
            "hung", f"qemu+unix:///system?socket={sock}", connect_timeout=30, timeout=30
        )
        try:
            obs = Observer({**hosts, "hung": hung}, dead_storage, timeout=1.5)
            t0 = time.monotonic()
            world = obs.observe()
            assert time.monotonic() - t0 < 2.5
            assert not world.all_hosts_known
            h = world.hosts["hung"]
            assert not h.reachable
            assert "did not finish within 1.5s" in (h.reason or "")
            assert h.domains == ()
            assert all(world.hosts[n].reachable for n in hosts)
            # Still stuck: not observed again (no thread pile-up), reported at once.
            t0 = time.monotonic()
            world = obs.observe()
            assert "still running" in (world.hosts["hung"].reason or "")
            assert all(world.hosts[n].reachable for n in hosts)
            assert time.monotonic() - t0 < 2.5
        finally:
            hung.close()


def test_host_set_can_change(hosts: dict[str, LibvirtHypervisor], dead_storage: RbdStorage) -> None:
    obs = Observer({"h0": hosts["h0"]}, dead_storage, timeout=10)
    assert set(obs.observe().hosts) == {"h0"}
    obs.set_hypervisors({"h1": hosts["h1"], "h2": hosts["h2"]})
    assert set(obs.observe().hosts) == {"h1", "h2"}
