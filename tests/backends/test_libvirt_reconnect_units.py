"""A lost libvirt connection (R2, a host's link cut): calls fail at once while the host does
not answer, a background loop reconnects as soon as it does, and the reconnect is reported.

Before: every call on a cut host waited a full connect deadline (5 s over TCP, 30 s over SSH)
and nothing reconnected until the next pass, which came with the resync timer; R2's smoke
(seed 1632312778) saw Unknown 18.2 s after the cut and convergence 12.0 s after the heal."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from reconciler.backends import libvirt_conn, reach
from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.backends.libvirt_conn import LibvirtConnection
from reconciler.backends.protocols import EventKind
from reconciler.errors import Transient


@pytest.mark.parametrize(
    ("uri", "address"),
    [
        ("qemu+tcp://10.0.0.1/system", ("10.0.0.1", 16509)),
        ("qemu+tcp://h:1234/system", ("h", 1234)),
        ("qemu+tls://h/system", ("h", 16514)),
        ("qemu://h/system", ("h", 16514)),
        ("qemu+ssh://root@10.0.0.2/system?keyfile=/k&no_tty=1", ("10.0.0.2", 22)),
        ("qemu+libssh2://u@h:2222/system", ("h", 2222)),
        ("qemu:///system", None),
        ("qemu+unix:///system?socket=/run/x.sock", None),
        ("test:///default", None),
    ],
)
def test_probe_address_follows_the_transport(uri: str, address: tuple[str, int] | None) -> None:
    assert reach.probe_address(uri) == address


def test_answers_means_the_network_answered() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert reach.answers(("127.0.0.1", port))
    assert reach.answers(("127.0.0.1", port))  # refused: the host is there, its daemon not
    assert reach.answers(None)
    assert reach.answers(("no-such-host.invalid", 22))  # not resolvable: cannot judge


def test_answers_is_false_on_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    def silent(*_a: Any, **_k: Any) -> socket.socket:
        raise TimeoutError("timed out")

    monkeypatch.setattr(reach.socket, "create_connection", silent)
    assert not reach.answers(("10.0.0.1", 16509), timeout=0.1)


class _Conn:
    """A virConnect stand-in: what LibvirtConnection's setup calls, and one RPC."""

    def __init__(self) -> None:
        self.close_cb: Any = None

    def setKeepAlive(self, *_a: Any) -> None:  # noqa: N802 - libvirt's name
        pass

    def registerCloseCallback(self, cb: Any, _opaque: Any) -> None:  # noqa: N802
        self.close_cb = cb

    def unregisterCloseCallback(self) -> None:  # noqa: N802
        pass

    def domainEventRegisterAny(self, *_a: Any) -> None:  # noqa: N802
        pass

    def getHostname(self) -> str:  # noqa: N802
        return "h"

    def close(self) -> int:
        return 0


class _Net:
    """The host's link: `up` decides whether the probe is answered and an open succeeds
    (a cut link makes an open hang until its deadline, as a TCP connect does)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.up = True
        self.opens = 0
        self.conns: list[_Conn] = []
        monkeypatch.setattr(libvirt_conn.libvirt, "open", self.open)
        monkeypatch.setattr(reach, "answers", lambda _addr, _timeout=1.0: self.up)

    def open(self, _uri: str) -> _Conn:
        self.opens += 1
        if not self.up:
            time.sleep(3)  # longer than the connect deadline below
            raise RuntimeError("unreachable")
        conn = _Conn()
        self.conns.append(conn)
        return conn


URI = "qemu+tcp://10.9.9.9/system"


def test_a_cut_host_fails_fast_and_comes_back_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    net = _Net(monkeypatch)
    restored = threading.Event()
    lost: list[str] = []
    c = LibvirtConnection(
        "h1",
        URI,
        timeout=5,
        connect_timeout=1.0,
        on_lost=lost.append,
        on_restored=restored.set,
        reconnect=(0.05, 0.2),
    )
    try:
        assert c.call("getHostname", lambda conn: conn.getHostname()) == "h"
        assert not restored.is_set()  # the first connect is not a reconnect
        net.up = False
        net.conns[-1].close_cb(net.conns[-1], 2, None)  # libvirt: keepalive timeout
        assert lost == ["connection closed: keepalive timeout"]
        opens = net.opens
        for _ in range(3):  # every call of a pass on the cut host: no connect deadline waited
            t0 = time.monotonic()
            with pytest.raises(Transient, match="unreachable"):
                c.call("getHostname", lambda conn: conn.getHostname())
            assert time.monotonic() - t0 < 0.5
        time.sleep(0.5)
        assert net.opens == opens  # no open tried while the probe got no answer
        net.up = True
        assert restored.wait(2), "the reconnect was not reported"
        t0 = time.monotonic()
        assert c.call("getHostname", lambda conn: conn.getHostname()) == "h"
        assert time.monotonic() - t0 < 0.5
        assert net.opens == opens + 1
    finally:
        c.close()


def test_a_failed_first_connect_keeps_trying_in_the_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host down when the controller starts: one connect deadline, then fast failures, and
    the reconnect is reported when it answers (its pass must not wait for the resync)."""
    net = _Net(monkeypatch)
    net.up = False
    restored = threading.Event()
    c = LibvirtConnection(
        "h1", URI, timeout=5, connect_timeout=0.3, on_restored=restored.set, reconnect=(0.05, 0.2)
    )
    try:
        with pytest.raises(Transient):
            c.connection()
        t0 = time.monotonic()
        with pytest.raises(Transient, match="unreachable"):
            c.connection()
        assert time.monotonic() - t0 < 0.5
        net.up = True
        assert restored.wait(5)
        assert c.call("getHostname", lambda conn: conn.getHostname()) == "h"
    finally:
        c.close()


def test_close_ends_the_reconnect_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    net = _Net(monkeypatch)
    c = LibvirtConnection("h1", URI, timeout=5, connect_timeout=1.0, reconnect=(0.05, 0.05))
    c.connection()
    net.up = False
    c.mark_broken("test")
    c.close()
    time.sleep(0.2)
    assert not any(t.name == "libvirt-reconnect-h1" for t in threading.enumerate())


def test_the_hypervisor_reports_the_reconnect_as_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller's event sink kicks a pass on any event: a reconnect is one, so the
    healing pass runs at once instead of at the next resync."""
    net = _Net(monkeypatch)
    hv = LibvirtHypervisor("h1", URI, timeout=5, connect_timeout=1.0)
    hv._conn._reconnect = (0.05, 0.2)
    kinds: list[str] = []
    hv.watch_events(lambda _h, kind, _d: kinds.append(kind))
    try:
        hv.libvirt_connection()
        net.up = False
        net.conns[-1].close_cb(net.conns[-1], 1, None)
        net.up = True
        deadline = time.monotonic() + 3
        while EventKind.CONNECTION_RESTORED not in kinds and time.monotonic() < deadline:
            time.sleep(0.02)
        assert kinds == [EventKind.CONNECTION_LOST, EventKind.CONNECTION_RESTORED]
    finally:
        hv.close()


def test_a_call_waiting_on_a_connection_found_dead_gives_up_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R2 (tcp smoke): keepalive closed the connection 7 s after the cut, yet a lookupByName
    waiting on it was not woken by libvirt and held its pass for the full 15 s deadline."""
    net = _Net(monkeypatch)
    c = LibvirtConnection("h1", URI, timeout=10, connect_timeout=1.0, reconnect=(0.05, 0.2))
    stuck = threading.Event()
    try:
        c.connection()
        net.up = False
        threading.Timer(0.3, lambda: net.conns[-1].close_cb(net.conns[-1], 2, None)).start()
        t0 = time.monotonic()
        with pytest.raises(Transient, match="lost meanwhile"):
            c.call("lookupByName", lambda _conn: stuck.wait(30))
        assert time.monotonic() - t0 < 1.5
    finally:
        stuck.set()
        c.close()
