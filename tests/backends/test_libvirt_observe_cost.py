"""Steady-state cost, event-driven refresh and unreachable hosts (test:/// driver)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.backends.protocols import EventKind

from .conftest import INSTALLATION, HostFactory, spec
from .hung import silent_unix_socket


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    keys = {k for k in after if after.get(k, 0) != before.get(k, 0)}
    return {k: after[k] - before.get(k, 0) for k in keys}


def settle(hv: LibvirtHypervisor) -> None:
    """Observe until a pass fetches no XML: events from our own changes arrive asynchronously
    and may invalidate entries once more right after the first fetch."""
    for _ in range(100):
        before = hv.rpc_stats().get("XMLDesc", 0)
        hv.observe()
        if hv.rpc_stats().get("XMLDesc", 0) == before:
            return
        time.sleep(0.05)
    raise AssertionError(f"{hv.name}: observe never settled")


def test_steady_state_is_one_rpc_per_host_and_no_xml(make_host: HostFactory) -> None:
    hosts = [
        make_host(f"h{i}", foreign=tuple((f"f{i}-{j}", 1, 256, j % 2 == 0) for j in range(5)))
        for i in range(3)
    ]
    for hv in hosts:
        for j in range(15):
            hv.define(spec(f"{hv.name}-vm{j}", vmid=j + 1))
        for j in range(0, 15, 3):
            hv.start(f"{hv.name}-vm{j}")
    for hv in hosts:
        settle(hv)
    first = [hv.observe() for hv in hosts]
    assert all(len(h.domains) == 20 for h in first)
    before = [hv.rpc_stats() for hv in hosts]
    for _ in range(5):
        again = [hv.observe() for hv in hosts]
    assert again == first
    for hv, b in zip(hosts, before, strict=True):
        assert _delta(b, hv.rpc_stats()) == {"getAllDomainStats": 5}


def _wait_for_event(
    hv: LibvirtHypervisor, kinds: set[str], domain: str | None = None
) -> threading.Event:
    got = threading.Event()

    def cb(host: str, kind: str, name: str) -> None:
        if host == hv.name and kind in kinds and domain in (None, name):
            got.set()

    hv.watch_events(cb)
    return got


def test_out_of_band_change_is_refetched_after_its_event(make_host: HostFactory) -> None:
    hv = make_host()
    for j in range(10):
        hv.define(spec(f"vm{j}", vmid=j + 1))
    settle(hv)
    got = _wait_for_event(hv, {EventKind.LIFECYCLE}, "vm3")
    conn = hv.libvirt_connection()
    # Someone edits vm3 behind our back: bigger memory, same mark.
    dom = conn.lookupByName("vm3")
    conn.defineXML(dom.XMLDesc(0).replace("524288", "1048576"))
    assert got.wait(5), "no lifecycle event from libvirt"
    before = hv.rpc_stats()
    h = hv.observe()
    assert h.domain("vm3").memory_mib == 1024  # type: ignore[union-attr]
    assert _delta(before, hv.rpc_stats()) == {"getAllDomainStats": 1, "XMLDesc": 1}


def test_domain_removed_behind_our_back_disappears(make_host: HostFactory) -> None:
    hv = make_host()
    hv.define(spec("vm1"))
    hv.start("vm1")
    assert hv.observe().domain("vm1") is not None
    got = _wait_for_event(hv, {EventKind.LIFECYCLE}, "vm1")
    dom = hv.libvirt_connection().lookupByName("vm1")
    dom.destroy()
    dom.undefine()
    assert got.wait(5)
    assert hv.observe().domain("vm1") is None


def test_state_change_is_seen_without_waiting_for_the_event(make_host: HostFactory) -> None:
    hv = make_host()
    hv.define(spec("vm1"))
    hv.observe()
    hv.libvirt_connection().lookupByName("vm1").create()
    assert hv.observe().domain("vm1").state == "running"  # type: ignore[union-attr]


def test_bad_uri_is_unreachable_with_a_reason() -> None:
    hv = LibvirtHypervisor("gone", "qemu+unix:///system?socket=/nonexistent/volctl-sock")
    try:
        t0 = time.monotonic()
        h = hv.observe()
        assert time.monotonic() - t0 < 5
        assert not h.reachable
        assert h.reason
        assert "/nonexistent/volctl-sock" in h.reason
        assert h.domains == ()
    finally:
        hv.close()


@pytest.fixture
def silent_socket(tmp_path: Path) -> Iterator[str]:
    with silent_unix_socket(str(tmp_path / "hung-sock")) as path:
        yield path


def test_hung_host_is_unreachable_within_the_timeout(silent_socket: str) -> None:
    hv = LibvirtHypervisor(
        "hung", f"qemu+unix:///system?socket={silent_socket}", connect_timeout=1.0, timeout=1.0
    )
    try:
        t0 = time.monotonic()
        h = hv.observe()
        took = time.monotonic() - t0
        assert not h.reachable
        assert "did not finish within 1s" in (h.reason or "")
        assert took < 2.5
        # The next observe tries again (fresh connection attempt), still bounded.
        t0 = time.monotonic()
        assert not hv.observe().reachable
        assert time.monotonic() - t0 < 2.5
    finally:
        hv.close()


def test_rpc_errors_are_typed(make_host: HostFactory) -> None:
    hv = make_host()
    hv.observe()
    conn = hv.libvirt_connection()
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName("nope")  # the raw library raises...
    from reconciler.errors import NotFound

    with pytest.raises(NotFound):  # ...the backend never lets it through
        hv.start("nope")


def test_invalid_xml_is_terminal(make_host: HostFactory) -> None:
    from reconciler.errors import Terminal

    hv = make_host()
    with pytest.raises(Terminal):
        hv.define(spec("bad", memory_mib=0))
    assert hv.observe().domain("bad") is None


def test_mutation_on_a_hung_host_times_out(silent_socket: str) -> None:
    from reconciler.errors import CallTimeout

    hv = LibvirtHypervisor(
        "hung",
        f"qemu+unix:///system?socket={silent_socket}",
        connect_timeout=1.0,
        timeout=1.0,
        installation=lambda: INSTALLATION,
    )
    try:
        t0 = time.monotonic()
        with pytest.raises(CallTimeout):
            hv.define(spec("vm1"))
        assert time.monotonic() - t0 < 2.5
    finally:
        hv.close()
