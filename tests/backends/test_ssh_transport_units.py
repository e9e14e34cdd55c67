"""Units of the SSH paths: the ssh command an image import runs, the connect deadline SSH
hosts get, and a connect that finishes after its deadline being closed (found by R2)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from reconciler.backends import libvirt_conn
from reconciler.backends.libvirt_conn import LibvirtConnection
from reconciler.backends.ssh_import import ssh_argv
from reconciler.controller.factory import Timeouts, hypervisor_for, over_ssh
from reconciler.errors import CallTimeout
from reconciler.model import Host, Meta
from reconciler.payload import SshFile

from .conftest import INSTALLATION


def test_ssh_argv_never_prompts_checks_host_keys_and_quotes_the_path() -> None:
    argv = ssh_argv(SshFile("root@h1", "/srv/a b;rm.img", 2222, "/k/id", "/k/known"))
    assert argv[:4] == ["ssh", "-T", "-e", "none"]
    assert "BatchMode=yes" in argv
    assert "StrictHostKeyChecking=yes" in argv
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-i") + 1] == "/k/id"
    assert "UserKnownHostsFile=/k/known" in argv
    assert argv[-3:-1] == ["--", "root@h1"]  # options end before the host
    assert argv[-1] == "stat -L -c %s -- '/srv/a b;rm.img' && exec cat -- '/srv/a b;rm.img'"
    plain = ssh_argv(SshFile("h", "/a.img"))
    assert "-i" not in plain
    assert "-p" not in plain
    assert not any(a.startswith("UserKnownHostsFile") for a in plain)


@pytest.mark.parametrize(
    ("uri", "ssh"),
    [
        ("qemu+ssh://root@h/system", True),
        ("qemu+libssh://root@h/system?known_hosts=/k", True),
        ("qemu+libssh2://h/system", True),
        ("qemu+tcp://h/system", False),
        ("qemu+unix:///system?socket=/x+ssh", False),
        ("test:///default", False),
    ],
)
def test_ssh_uris_get_the_ssh_connect_deadline(uri: str, ssh: bool) -> None:
    assert over_ssh(uri) is ssh
    hv = hypervisor_for(Host(Meta("h"), uri, 1), installation=lambda: INSTALLATION)
    t = Timeouts()
    assert hv._conn.connect_timeout == (t.libvirt_connect_ssh if ssh else t.libvirt_connect)


class _Conn:
    def __init__(self) -> None:
        self.closed = threading.Event()

    def setKeepAlive(self, *_a: Any) -> None:  # noqa: N802 - libvirt's name
        pass

    def registerCloseCallback(self, *_a: Any) -> None:  # noqa: N802
        pass

    def unregisterCloseCallback(self) -> None:  # noqa: N802
        pass

    def domainEventRegisterAny(self, *_a: Any) -> None:  # noqa: N802
        pass

    def close(self) -> int:
        self.closed.set()
        return 0


def test_a_connect_that_finishes_after_its_deadline_is_closed_not_leaked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """R2 over SSH: every abandoned `libvirt.open` that later succeeded left an ssh process
    and a daemon client behind for good.  Now the late thread closes what it opened."""
    late = _Conn()

    def slow_open(_uri: str) -> _Conn:
        time.sleep(0.6)
        return late

    monkeypatch.setattr(libvirt_conn.libvirt, "open", slow_open)
    c = LibvirtConnection("h", "qemu+ssh://root@h/system", timeout=1, connect_timeout=0.2)
    with pytest.raises(CallTimeout):
        c.connection()
    assert late.closed.wait(5), "the late connection was leaked"
