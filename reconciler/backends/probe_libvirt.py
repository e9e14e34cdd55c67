"""libvirt probes for `volctl doctor`: what a host offers, proven through its own libvirtd.

Why these probes: everything has to be checkable *remotely*, through the Host URI the
controller will use, because the controller never logs into hypervisors.
- Versions come from `getLibVersion()` / `getVersion()` (libvirt and the hypervisor).
- "QEMU can open RBD" is not in any capability document (domcapabilities lists disk buses,
  not network protocols, and rbd support is a loadable QEMU module), so the probe starts a
  tiny *transient, paused* domain whose only disk is the scratch RBD image, read-only, with
  the configured secret: QEMU opens block devices at start, so success proves the rbd
  driver, the secret (defined and holding a working key), and that the host reaches the
  monitors, all as the guests will.  It never runs a guest CPU and is destroyed at once.
- The host's clock: libvirt has no "host time" call, but the probe domain's RTC is driven
  by the host clock (`<clock offset='utc'/>`), and QMP `qom-get /machine rtc-time` reads it
  (one second resolution) without touching the block layer.
"""

from __future__ import annotations

import calendar
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from xml.sax.saxutils import quoteattr

import libvirt
import libvirt_qemu

T = TypeVar("T")
PROBE_PREFIX = "volctl-doctor-"


class ProbeError(Exception):
    """The host did not answer or refused; the message is libvirt's."""


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; the probes report them instead."""


def bounded(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run FN on a daemon thread; ProbeError if it fails or takes longer than TIMEOUT."""
    libvirt.registerErrorHandler(_quiet, None)
    box: dict[str, object] = {}

    def body() -> None:
        try:
            box["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=body, name=f"doctor {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ProbeError(f"{what}: no answer within {timeout:.0f} s")
    if "error" in box:
        err = box["error"]
        msg = err.get_error_message() if isinstance(err, libvirt.libvirtError) else str(err)
        raise ProbeError(f"{what}: {msg}") from err  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _version(n: int) -> tuple[int, int, int]:
    return n // 1_000_000, (n // 1000) % 1000, n % 1000


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    driver: str  # "QEMU"
    libvirt_version: tuple[int, int, int]
    hypervisor_version: tuple[int, int, int]
    secret_defined: bool
    secret_usage: str | None  # the secret's usage name (never its value)


def host_facts(uri: str, secret_uuid: str | None, timeout: float = 10.0) -> HostFacts:
    def probe() -> HostFacts:
        conn = libvirt.open(uri)
        try:
            usage: str | None = None
            defined = False
            if secret_uuid:
                try:
                    usage = conn.secretLookupByUUIDString(secret_uuid).usageID()
                    defined = True
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                        raise
            return HostFacts(
                hostname=conn.getHostname(),
                driver=conn.getType(),
                libvirt_version=_version(conn.getLibVersion()),
                hypervisor_version=_version(conn.getVersion()),
                secret_defined=defined,
                secret_usage=usage,
            )
        finally:
            conn.close()

    return bounded(probe, timeout, f"connect {uri}")


@dataclass(frozen=True)
class RbdOpen:
    host_time: float  # the host's clock (UTC epoch seconds, whole seconds)
    before: float  # controller clock just before the clock read
    after: float  # and just after


@dataclass(frozen=True)
class RbdDisk:
    image: str  # "pool/name"
    monitors: tuple[tuple[str, int], ...]
    user: str
    secret_uuid: str

    def xml(self) -> str:
        hosts = "".join(f"<host name={quoteattr(h)} port='{p}'/>" for h, p in self.monitors)
        return (
            "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
            f"<auth username={quoteattr(self.user)}>"
            f"<secret type='ceph' uuid={quoteattr(self.secret_uuid)}/></auth>"
            f"<source protocol='rbd' name={quoteattr(self.image)}>{hosts}</source>"
            "<target dev='vda' bus='virtio'/><readonly/></disk>"
        )


def probe_domain(uri: str, disk: RbdDisk | None, timeout: float = 30.0) -> RbdOpen:
    """Start a paused transient domain (with DISK read-only, if given), read the host clock
    through it, destroy it.  With a disk, success means QEMU opened the RBD image."""
    name = f"{PROBE_PREFIX}{uuid.uuid4().hex[:8]}"
    xml = (
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os><clock offset='utc'/>"
        f"<devices>{disk.xml() if disk else ''}"
        "<video><model type='none'/></video><memballoon model='none'/></devices></domain>"
    )
    query = json.dumps(
        {"execute": "qom-get", "arguments": {"path": "/machine", "property": "rtc-time"}}
    )

    def probe() -> RbdOpen:
        conn = libvirt.open(uri)
        try:
            dom = conn.createXML(xml, libvirt.VIR_DOMAIN_START_PAUSED)
            try:
                before = time.time()
                reply = libvirt_qemu.qemuMonitorCommand(dom, query, 0)
                after = time.time()
            finally:
                dom.destroy()
        finally:
            conn.close()
        tm = json.loads(reply)["return"]
        host = calendar.timegm(
            (tm["tm_year"] + 1900, tm["tm_mon"] + 1, tm["tm_mday"],
             tm["tm_hour"], tm["tm_min"], tm["tm_sec"], 0, 0, 0)
        )  # fmt: skip
        return RbdOpen(float(host), before, after)

    return bounded(
        probe, timeout, "start a paused probe domain" + (" with an RBD disk" if disk else "")
    )


def define_ceph_secret(
    uri: str, secret_uuid: str, usage: str, key: bytes, timeout: float = 10.0
) -> bool:
    """Define the private, persistent ceph secret SECRET_UUID holding KEY (raw bytes) unless
    it exists; True if it was defined now.  The key goes straight into libvirt."""
    xml = (
        "<secret ephemeral='no' private='yes'>"
        f"<uuid>{secret_uuid}</uuid>"
        f"<usage type='ceph'><name>{usage}</name></usage></secret>"
    )

    def define() -> bool:
        conn = libvirt.open(uri)
        try:
            try:
                conn.secretLookupByUUIDString(secret_uuid)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SECRET:
                    raise
            else:
                return False
            secret = conn.secretDefineXML(xml, 0)
            try:
                secret.setValue(key, 0)
            except libvirt.libvirtError:
                secret.undefine()  # never leave a secret without its value behind
                raise
            return True
        finally:
            conn.close()

    return bounded(define, timeout, f"define secret on {uri}")


def undefine_secret(uri: str, secret_uuid: str, timeout: float = 10.0) -> None:
    """Remove the secret (tests break a host on purpose with this)."""

    def undefine() -> None:
        conn = libvirt.open(uri)
        try:
            conn.secretLookupByUUIDString(secret_uuid).undefine()
        finally:
            conn.close()

    bounded(undefine, timeout, f"undefine secret on {uri}")
