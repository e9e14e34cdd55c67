"""Build the real backends from the desired Host documents and the volctl config.

Why: the CLI, the controller and the tests all need "a Hypervisor for this Host" and "the
Storage for this config" built the same way (capacity overrides, timeouts, monitors read
from the Ceph conf when the config does not list them).  It lives with the controller, not
in `backends/`, because it is the one place that knows both vocabularies: the backends take
plain values (a URI, a conf path, a `CephAccess`) and never see the config or a Host.  Only
paths and ids pass through here, never a key: librados reads the keyring named in the Ceph
conf, and guests use the libvirt secret named by `CephConfig.secret_uuid`.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.backends.rbd_backend import RbdStorage
from reconciler.config import CephConfig
from reconciler.identity import Installation
from reconciler.model import Host
from reconciler.payload import CephAccess

DEFAULT_MON_PORT = 6789  # msgr v1; what librbd in qemu reaches with a plain host:port
_ADDR = re.compile(r"^(?:(v[12]):)?\[?([0-9A-Za-z.\-:]+?)\]?(?::(\d+))?(?:/\d+)?$")


@dataclass(frozen=True)
class Timeouts:
    """Deadlines (seconds) for backend calls."""

    libvirt_call: float = 15.0
    libvirt_connect: float = 5.0
    # qemu+ssh/qemu+libssh: ssh's own connect, key exchange and login come first; on a loaded
    # machine they alone took 4-6 s (R2), so 5 s made every reconnect after a partition fail
    libvirt_connect_ssh: float = 30.0
    rbd_call: float = 30.0
    rbd_connect: float = 10.0
    rbd_import: float = 1800.0


def over_ssh(uri: str) -> bool:
    """True for libvirt's SSH transports (`qemu+ssh://`, `qemu+libssh://`, `…+libssh2://`)."""
    scheme = uri.split(":", 1)[0]
    return scheme.endswith(("+ssh", "+libssh", "+libssh2"))


def hypervisor_for(
    host: Host,
    timeouts: Timeouts | None = None,
    *,
    installation: Callable[[], Installation],
) -> LibvirtHypervisor:
    """A LibvirtHypervisor for one Host document (its capacity overrides included) that
    changes only what `installation` owns (in practice `storage.installation`: the pool
    says which installation we are)."""
    t = timeouts or Timeouts()
    return LibvirtHypervisor(
        host.meta.name,
        host.uri,
        timeout=t.libvirt_call,
        connect_timeout=t.libvirt_connect_ssh if over_ssh(host.uri) else t.libvirt_connect,
        cpu_capacity=host.cpu_capacity,
        ram_capacity_mib=host.ram_capacity_mib,
        installation=installation,
    )


def storage_for(
    ceph: CephConfig, timeouts: Timeouts | None = None, *, installation: str | None = None
) -> RbdStorage:
    """The RbdStorage for the configured pool and cephx user; `installation` is the
    config's `installation:` (None: "<fsid>/<pool>")."""
    t = timeouts or Timeouts()
    storage = RbdStorage(
        ceph.conf,
        ceph.pool,
        ceph.user,
        timeout=t.rbd_call,
        connect_timeout=t.rbd_connect,
        import_timeout=t.rbd_import,
        installation=installation,
    )
    storage.connect_hook = log_ceph_client
    return storage


def log_ceph_client(addr: str) -> None:
    """Log the Ceph client address of each new connection: it is what `ceph osd blocklist`
    takes, and it tells volctl's own header watches apart from qemu's in `rbd status`."""
    structlog.get_logger("volctl.controller").info("ceph.connected", client_addr=addr)


def ceph_access(ceph: CephConfig) -> CephAccess:
    """How guests reach Ceph: monitors (config, else the conf's `mon host`) and the secret."""
    return CephAccess(
        monitors=ceph.monitors or monitors_from_conf(ceph.conf),
        auth_user=ceph.user,
        secret_uuid=ceph.secret_uuid or "",
        pool=ceph.pool,
    )


def parse_mon_host(value: str) -> tuple[tuple[str, int], ...]:
    """Parse a `mon host` value; per monitor the v1 address is preferred (qemu's librbd).

    Accepts "a:6789,b", "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]" and mixtures.
    """
    out: list[tuple[str, int]] = []
    groups = re.findall(r"\[([^\]]*)\]|([^,\s\[\]]+)", value)
    for bracket, plain in groups:
        entries = [e.strip() for e in (bracket or plain).split(",") if e.strip()]
        best: tuple[str, int] | None = None
        for entry in entries:
            m = _ADDR.match(entry)
            if not m:
                continue
            proto, host, port = m.group(1), m.group(2), m.group(3)
            addr = (host, int(port) if port else DEFAULT_MON_PORT)
            if proto == "v1" or best is None:
                best = addr
        if best is not None and best not in out:
            out.append(best)
    return tuple(out)


def monitors_from_conf(conf: str) -> tuple[tuple[str, int], ...]:
    """Monitors listed in a ceph.conf ([global] or [client] `mon host`/`mon_host`)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read(conf)
    except configparser.Error:
        return ()
    for section in ("client", "global"):
        for key in ("mon host", "mon_host", "mon-host"):
            if parser.has_option(section, key):
                return parse_mon_host(parser.get(section, key))
    return ()
