"""A real libvirtd going away and coming back: unknown with a reason at once, reconnected in
the background and reported, then seen again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.backends.protocols import EventKind
from reconciler.lab.info import LabInfo
from reconciler.lab.lab import Lab
from reconciler.payload import CephAccess, DomainSpec
from tests.backends.conftest import INSTALLATION

pytestmark = pytest.mark.lab


def test_daemon_restart(lab: LabInfo, tmp_path: Path) -> None:
    host = lab.hosts[-1]
    hv = LibvirtHypervisor(
        host.name, host.uri, timeout=5, connect_timeout=3, installation=lambda: INSTALLATION
    )
    lost, back = threading.Event(), threading.Event()
    hv.watch_events(lambda h, kind, d: lost.set() if kind == EventKind.CONNECTION_LOST else None)
    hv.watch_events(
        lambda h, kind, d: back.set() if kind == EventKind.CONNECTION_RESTORED else None
    )
    spec = DomainSpec(
        name="reconnect-vm",
        vmid=77,
        spec_hash="r",
        vcpus=1,
        memory_mib=64,
        root_image=f"{lab.pool}/does-not-need-to-exist",
        console_log=str(tmp_path / "c.log"),
        ceph=CephAccess(lab.monitors, lab.ceph_user, lab.secret_uuid, lab.pool),
    )
    the_lab = Lab(Path(lab.dir))
    try:
        hv.define(spec)  # defined only: never started, so no Ceph access is needed
        assert hv.observe().domain("reconnect-vm") is not None
        the_lab.stop_host_daemon(host.name)
        assert lost.wait(10), "no connection-lost notification"
        t0 = time.monotonic()
        down = hv.observe()
        assert time.monotonic() - t0 < 5
        assert not down.reachable
        assert down.reason
        assert down.domains == ()
        assert not back.is_set()
        t0 = time.monotonic()
        the_lab.start_host_daemon(host.name)
        # reconnected in the background (docs/backends.md), without a call asking for it
        assert back.wait(10), "no connection-restored notification"
        assert time.monotonic() - t0 < 10
        up = hv.observe()
        assert up.reachable
        d = up.domain("reconnect-vm")
        assert d is not None
        assert d.mark is not None
        assert d.mark.vmid == 77
    finally:
        if not hv.observe().reachable:
            the_lab.start_host_daemon(host.name)
        hv.destroy("reconnect-vm")
        hv.close()
