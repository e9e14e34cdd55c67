"""Checks on every hypervisor, through its Host URI: libvirt answers with supported
versions, the ceph secret is defined, QEMU opens the RBD scratch image with it, and the
host's clock agrees with this node's.

Why through libvirt only: the controller reaches hosts through their URIs and nothing else,
so that is what must work; how each fact is read remotely is explained in
reconciler/backends/probe_libvirt.py.  `--fix-secrets` defines a missing secret from the
controller's own keyring (the key goes from the file into libvirt and is never printed); an
existing secret is left alone, so running it twice changes nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reconciler.backends.probe_libvirt import (
    HostFacts,
    ProbeError,
    RbdDisk,
    RbdOpen,
    define_ceph_secret,
    host_facts,
    probe_domain,
)
from reconciler.config import CephConfig
from reconciler.doctor.result import CheckResult, failed, passed, skipped
from reconciler.model import Host

# the versions volctl is tested with (Debian 12); older ones may lack the event, metadata
# and hot-plug behaviour the backends rely on
MIN_LIBVIRT = (9, 0, 0)
MIN_QEMU = (7, 2, 0)


@dataclass(frozen=True)
class HostSettings:
    ceph: CephConfig
    monitors: tuple[tuple[str, int], ...]
    max_clock_skew: float = 2.0  # seconds
    timeout: float = 10.0
    fix_secrets: bool = False
    key: bytes | None = None  # the controller's cephx key, only with fix_secrets


def _v(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def check_host(host: Host, scratch: str | None, s: HostSettings) -> list[CheckResult]:
    target = f"host {host.meta.name}"
    uuid_ = s.ceph.secret_uuid
    try:
        facts = host_facts(host.uri, uuid_, s.timeout)
    except ProbeError as exc:
        why = "libvirt did not answer"
        return [
            failed(
                "host.connect",
                target,
                str(exc),
                f"start libvirtd on {host.meta.name} and make {host.uri} reachable from this "
                f"node as this user (try: virsh -c '{host.uri}' version)",
            ),
            *(
                skipped(c, target, why)
                for c in ("host.versions", "host.secret", "host.rbd", "host.clock")
            ),
        ]
    out = [passed("host.connect", target, f"{host.uri} answers (hostname {facts.hostname})")]
    out.append(_versions(target, facts))
    secret_ok, row = _secret(host, target, facts, s)
    out.append(row)
    disk = None
    if scratch and secret_ok and uuid_:
        disk = RbdDisk(scratch, s.monitors, s.ceph.user, uuid_)
    clock: RbdOpen | None = None
    if disk is None:
        why = "no scratch image" if not scratch else "no usable ceph secret"
        out.append(skipped("host.rbd", target, why))
    else:
        try:
            clock = probe_domain(host.uri, disk, max(30.0, s.timeout))
        except ProbeError as exc:
            out.append(
                failed(
                    "host.rbd",
                    target,
                    str(exc),
                    f"on {host.meta.name}: install QEMU's rbd driver "
                    "(Debian: qemu-block-extra), check that secret "
                    f"{uuid_} holds client.{s.ceph.user}'s key, and that the host "
                    f"reaches the monitors {_mons(s.monitors)}",
                )
            )
        else:
            out.append(passed("host.rbd", target, f"QEMU opened {scratch} as client.{s.ceph.user}"))
    out.append(_clock(host, target, clock, s))
    return out


def _mons(monitors: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{h}:{p}" for h, p in monitors) or "(none configured)"


def _versions(target: str, f: HostFacts) -> CheckResult:
    seen = f"libvirt {_v(f.libvirt_version)}, {f.driver} {_v(f.hypervisor_version)}"
    if f.driver != "QEMU":
        return failed(
            "host.versions",
            target,
            seen,
            "volctl drives QEMU/KVM hosts: use a qemu:// or qemu+ssh:// URI",
        )
    low = []
    if f.libvirt_version < MIN_LIBVIRT:
        low.append(f"libvirt to {_v(MIN_LIBVIRT)} or newer")
    if f.hypervisor_version < MIN_QEMU:
        low.append(f"QEMU to {_v(MIN_QEMU)} or newer")
    if low:
        return failed(
            "host.versions",
            target,
            f"{seen}: older than supported",
            "upgrade " + " and ".join(low) + " (Debian 12 ships both)",
        )
    return passed("host.versions", target, f"{seen} (supported)")


def _secret(host: Host, target: str, f: HostFacts, s: HostSettings) -> tuple[bool, CheckResult]:
    uuid_ = s.ceph.secret_uuid
    if not uuid_:
        return False, failed(
            "host.secret",
            target,
            "no ceph.secretUUID in the config",
            "set ceph.secretUUID (any UUID, e.g. from uuidgen) in the config, "
            "then run volctl doctor --fix-secrets",
        )
    if f.secret_defined:
        return True, passed("host.secret", target, f"secret {uuid_} defined ({f.secret_usage})")
    if s.fix_secrets and s.key is not None:
        usage = f"client.{s.ceph.user} volctl"
        try:
            define_ceph_secret(host.uri, uuid_, usage, s.key, s.timeout)
        except ProbeError as exc:
            return False, failed(
                "host.secret",
                target,
                f"--fix-secrets failed: {exc}",
                f"define it by hand on {host.meta.name} (docs/deploy.md)",
            )
        return True, passed(
            "host.secret", target, f"secret {uuid_} was missing; defined now by --fix-secrets"
        )
    return False, failed(
        "host.secret",
        target,
        f"ceph secret {uuid_} is not defined",
        "run `volctl doctor --fix-secrets` (defines it from client."
        f"{s.ceph.user}'s keyring on this node), or define it on "
        f"{host.meta.name} with virsh secret-define/secret-set-value",
    )


def _clock(host: Host, target: str, seen: RbdOpen | None, s: HostSettings) -> CheckResult:
    if seen is None:  # no RBD probe ran: a diskless probe domain still shows the clock
        try:
            seen = probe_domain(host.uri, None, max(30.0, s.timeout))
        except ProbeError as exc:
            return failed(
                "host.clock",
                target,
                f"cannot read the host clock: {exc}",
                f"check that {host.meta.name} can start a QEMU domain",
            )
    # the host clock is read in whole seconds: its true value is in [t, t + 1)
    mid = (seen.before + seen.after) / 2
    offset = seen.host_time + 0.5 - mid
    slack = 1.0 + (seen.after - seen.before) / 2  # RTC resolution and phase: about 1 s
    detail = f"offset {offset:+.1f} s (bound {s.max_clock_skew:g} s)"
    if abs(offset) > s.max_clock_skew + slack:
        return failed(
            "host.clock",
            target,
            detail,
            f"run NTP (chrony or systemd-timesyncd) on this node and on "
            f"{host.meta.name}; timestamps, retries and leases assume agreeing "
            "clocks",
        )
    return passed("host.clock", target, detail)


def check_hosts(hosts: list[Host], scratch: str | None, s: HostSettings) -> list[CheckResult]:
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        per_host = list(pool.map(lambda h: check_host(h, scratch, s), hosts))
    return [row for rows in per_host for row in rows]
