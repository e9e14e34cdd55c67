"""The Hypervisor Protocol on libvirt: observe one host cheaply, change only our domains.

Why it looks like this:

- **Cheap steady state.**  `observe()` makes one `getAllDomainStats(STATE)` RPC per host.  The
  parsed XML of each domain (mark, disks, vcpus, memory) is cached per UUID and re-fetched
  only when libvirt says it changed (lifecycle, device-added/removed, metadata events), when
  its state changed, when we changed it ourselves, when it has a detach in flight, or when
  the entry is older than `cache_ttl` (a safety net for missed events).  Missing entries (all
  of them at a cold start) are fetched `FETCH_PARALLEL` at a time.  The connection's
  loss drops the whole cache.  Block stats are deliberately *not* requested: for running
  domains they make qemu query its RBD block nodes on the monitor, which hangs when Ceph is
  down and wedges the domain (lab notes, pitfall 5).
- **Ownership.**  A domain is ours only if its XML carries the volctl mark *of this
  installation* (`identity.Installation.owns`: the mark names us, or it is a legacy mark
  without a name and every RBD disk of the domain is in our pool).  Another installation's
  domain is reported without a mark, i.e. foreign.  Every mutation first checks the mark
  and raises `Conflict` on a foreign domain; nothing foreign is ever modified.  Which
  installation we are is asked of `installation` (it may need Ceph: the default name is the
  cluster's fsid); while it cannot say, the host is unknown, never guessed.
- **Idempotent mutations.**  Each one is "ensure": it reads the current state and does only
  what is missing, so a retry after a crash or timeout is always safe.
- **Detach is a request.**  `detach_disk` asks libvirt (asynchronously via the device alias
  where possible) and returns; completion is what a later `observe()` sees (the disk gone
  from the live XML), typically prompted by the DEVICE_REMOVED event.
- **Devices** (disks, NICs) are plugged and unplugged by `libvirt_devices.LibvirtDevices`,
  one rule for every kind.
- **The test:/// seam.**  libvirt's test driver has no device hot-plug.  On it, attach and
  detach redefine the persistent XML with the disk added/removed, and `observe()` reports
  the persistent disks as the domain's disks (the test driver cannot change live devices).
  Real hot-plug semantics are covered by the lab tests on a real libvirtd.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import libvirt

from reconciler.backends import capabilities, domxml
from reconciler.backends.libvirt_conn import LibvirtConnection
from reconciler.backends.libvirt_devices import LibvirtDevices
from reconciler.backends.protocols import DomainEventCallback, EventKind
from reconciler.errors import BackendError, Conflict, NotFound, Terminal
from reconciler.identity import XMLNS, Installation
from reconciler.observe.types import (
    DomainState,
    ObservedDisk,
    ObservedDomain,
    ObservedHost,
    OwnerMark,
)
from reconciler.payload import DomainSpec

_STATE = {
    libvirt.VIR_DOMAIN_RUNNING: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTOFF: DomainState.SHUTOFF,
}
_INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
FETCH_PARALLEL = 4  # XML fetches in flight per host (the connection's worker has 4 threads)
_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG


@dataclass(frozen=True)
class _HostInfo:
    cpus: int
    memory_mib: int
    hostname: str
    guests: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class _Entry:
    parsed: domxml.ParsedDomain
    state: int
    fetched_at: float
    generation: int

    @property
    def detaching(self) -> bool:
        parsed = self.parsed
        return any(not d.persistent for d in parsed.disks) or any(
            not n.persistent for n in parsed.nics
        )


class LibvirtHypervisor(LibvirtDevices):
    """One libvirt host, addressed by URI.  Implements `protocols.Hypervisor`."""

    def __init__(
        self,
        name: str,
        uri: str,
        *,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        cpu_capacity: int | None = None,
        ram_capacity_mib: int | None = None,
        cache_ttl: float = 600.0,
        keepalive: tuple[int, int] = (2, 3),
        installation: Callable[[], Installation] | None = None,
    ) -> None:
        """`installation` says which installation we are (see Ownership above).  None is
        for tools that only observe (benchmarks): every volctl mark reads as ours, and
        every mutation is refused."""
        self.name = name
        self._installation = installation
        self.uri = uri
        self._cpu_override = cpu_capacity
        self._ram_override = ram_capacity_mib
        self._cache_ttl = cache_ttl
        self._lock = threading.Lock()
        self._cache: dict[str, _Entry] = {}
        self._epoch: dict[str, int] = {}
        self._callbacks: list[DomainEventCallback] = []
        self._info: tuple[int, _HostInfo] | None = None  # (generation, info)
        self._conn = LibvirtConnection(
            name,
            uri,
            timeout=timeout,
            connect_timeout=connect_timeout,
            keepalive=keepalive,
            on_event=self._on_event,
            on_lost=self._on_lost,
            on_restored=self._on_restored,
        )

    # -- events and cache -------------------------------------------------------------------

    def _invalidate(self, uuid: str) -> None:
        with self._lock:
            self._cache.pop(uuid, None)
            self._epoch[uuid] = self._epoch.get(uuid, 0) + 1

    def _on_event(self, kind: str, name: str, uuid: str) -> None:
        self._invalidate(uuid)
        self._notify(kind, name)

    def _on_lost(self, _reason: str) -> None:
        with self._lock:
            self._cache.clear()
            self._info = None
        self._notify(EventKind.CONNECTION_LOST, "")

    def _on_restored(self) -> None:
        self._notify(EventKind.CONNECTION_RESTORED, "")

    def _notify(self, kind: str, name: str) -> None:
        for cb in list(self._callbacks):
            try:
                cb(self.name, kind, name)
            except Exception:  # noqa: BLE001, S112 - a listener must not break event delivery
                continue

    def watch_events(self, callback: DomainEventCallback) -> None:
        self._callbacks.append(callback)

    def rpc_count(self) -> int:
        return self._conn.rpc_count()

    def rpc_stats(self) -> dict[str, int]:
        """RPCs made so far, by libvirt API name (e.g. "XMLDesc")."""
        return self._conn.rpc_stats()

    def libvirt_connection(self) -> Any:
        """The underlying virConnect.  For tests and lab tooling only.

        The test driver's state is private to one connection, so out-of-band changes in
        tests ("a domain removed behind our back") must go through this very connection.
        """
        return self._conn.connection()

    def close(self) -> None:
        self._conn.close()

    # -- observe ----------------------------------------------------------------------------

    def _emulated(self) -> bool:
        """True on libvirt's test driver (test:///..., test+unix://...): no hot-plug there."""
        return self.uri.split(":", 1)[0].split("+", 1)[0] == "test"

    def _host_info(self) -> _HostInfo:
        """Size, name and capabilities: read once per connection (they change with a reboot
        or a daemon restart, and either breaks the connection)."""
        gen = self._conn.generation
        if self._info is not None and self._info[0] == gen:
            return self._info[1]
        info = self._conn.call("getInfo", lambda c: c.getInfo())
        hostname = self._conn.call("getHostname", lambda c: c.getHostname())
        try:
            caps = str(self._conn.call("getCapabilities", lambda c: c.getCapabilities()))
        except Terminal:
            caps = ""  # a driver without capabilities: nothing is filtered on them
        guests = capabilities.parse_guests(caps, str(info[0]) if self._emulated() else None)
        value = _HostInfo(int(info[2]), int(info[1]), str(hostname), guests)
        self._info = (self._conn.generation, value)
        return value

    def _fetch(self, dom: Any, state: int) -> domxml.ParsedDomain:
        if self._emulated() or state == libvirt.VIR_DOMAIN_SHUTOFF:
            xml = self._conn.call("XMLDesc", lambda _c: dom.XMLDesc(_INACTIVE))
            return domxml.parse_domain(xml)
        live = self._conn.call("XMLDesc", lambda _c: dom.XMLDesc(0))
        inactive = self._conn.call("XMLDesc", lambda _c: dom.XMLDesc(_INACTIVE))
        return domxml.parse_domain(live, inactive)

    def _fresh(self, uuid: str, state: int, now: float) -> _Entry | None:
        with self._lock:
            entry = self._cache.get(uuid)
        if entry is None or entry.state != state or entry.detaching:
            return None
        if entry.generation != self._conn.generation or now - entry.fetched_at > self._cache_ttl:
            return None
        return entry

    def _fetch_missing(self, missing: list[tuple[Any, str, int]], now: float) -> dict[str, _Entry]:
        """XML of the domains without a fresh cache entry, several RPCs at a time (a cold
        start fetches every domain; one at a time that is a round trip per domain in a row).
        A domain undefined meanwhile is left out; any other failure fails the observe."""

        def one(item: tuple[Any, str, int]) -> _Entry | None:
            dom, uuid, state = item
            with self._lock:
                epoch = self._epoch.get(uuid, 0)
            gen = self._conn.generation
            try:
                entry = _Entry(self._fetch(dom, state), state, now, gen)
            except NotFound:
                return None
            with self._lock:
                if self._epoch.get(uuid, 0) == epoch:  # no event invalidated it meanwhile
                    self._cache[uuid] = entry
            return entry

        if len(missing) <= 1:
            results = [one(m) for m in missing]
        else:
            with ThreadPoolExecutor(min(FETCH_PARALLEL, len(missing))) as pool:
                results = list(pool.map(one, missing))
        return {m[1]: e for m, e in zip(missing, results, strict=True) if e is not None}

    def observe(self) -> ObservedHost:
        try:
            owner = self._installation() if self._installation is not None else None
            host = self._host_info()
            stats = self._conn.call(
                "getAllDomainStats",
                lambda c: c.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE),
            )
            domains = []
            now = time.monotonic()
            seen = set()
            listed = []
            for dom, st in stats:
                uuid = dom.UUIDString()
                seen.add(uuid)
                state = int(st.get("state.state", -1))
                listed.append((dom, uuid, state, self._fresh(uuid, state, now)))
            fetched = self._fetch_missing([(d, u, s) for d, u, s, e in listed if e is None], now)
            for dom, uuid, state, cached in listed:
                entry = cached or fetched.get(uuid)
                if entry is None:
                    continue  # undefined between the listing and the fetch
                p = entry.parsed
                domains.append(
                    ObservedDomain(
                        name=dom.name(),
                        uuid=uuid,
                        state=_STATE.get(state, DomainState.OTHER),
                        vcpus=p.vcpus,
                        memory_mib=p.memory_mib,
                        mark=p.mark if owner is None else domxml.owned_mark(p.mark, p.disks, owner),
                        disks=p.disks,
                        nics=p.nics,
                        virt_type=p.virt_type,
                        vnc=p.vnc,
                        console_log=p.console_log,
                        config_targets=p.config_targets,
                    )
                )
            with self._lock:
                for gone in set(self._cache) - seen:
                    del self._cache[gone]
                for gone in set(self._epoch) - seen:
                    del self._epoch[gone]
        except BackendError as exc:
            return ObservedHost(name=self.name, reachable=False, reason=str(exc))
        return ObservedHost(
            name=self.name,
            reachable=True,
            cpus=self._cpu_override or host.cpus,
            memory_mib=self._ram_override or host.memory_mib,
            domains=tuple(sorted(domains, key=lambda d: d.name)),
            hostname=host.hostname,
            guests=host.guests,
        )

    # -- helpers for mutations --------------------------------------------------------------

    def _lookup(self, name: str) -> Any:
        return self._conn.call("lookupByName", lambda c: c.lookupByName(name))

    def _owner(self) -> Installation:
        if self._installation is None:
            raise Terminal(f"{self.name}: opened to observe only (no installation given)")
        return self._installation()

    def _lookup_ours(self, name: str) -> Any:
        """The domain, after checking our mark in its persistent metadata.  A legacy mark
        (no installation) is judged on the domain's disks: from the observe cache when it
        has the domain, else from one XML read."""
        owner = self._owner()
        dom = self._lookup(name)
        try:
            raw = self._conn.call(
                "metadata",
                # AFFECT_CURRENT: works for transient (foreign) domains too; ours carry the
                # mark in both the live and the persistent definition.
                lambda _c: dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, XMLNS, 0),
            )
        except NotFound:
            raise Conflict(f"{self.name}: domain {name} is not managed by volctl") from None
        mark = domxml.parse_mark(raw)
        if mark is None or mark.name != name:
            raise Conflict(f"{self.name}: domain {name} is not managed by volctl")
        if mark.installation is not None:
            disks: tuple[ObservedDisk, ...] = ()  # the name decides
        else:
            with self._lock:
                cached = self._cache.get(dom.UUIDString())
            disks = (cached.parsed if cached else domxml.parse_domain(self._xml(dom, 0))).disks
        if domxml.owned_mark(mark, disks, owner) is None:
            raise Conflict(_not_ours(self.name, name, mark, owner))
        return dom

    def _is_active(self, dom: Any) -> bool:
        return bool(self._conn.call("isActive", lambda _c: dom.isActive()))

    def _xml(self, dom: Any, flags: int) -> str:
        return str(self._conn.call("XMLDesc", lambda _c: dom.XMLDesc(flags)))

    def _define_xml(self, xml: str) -> Any:
        dom = self._conn.call("defineXML", lambda c: c.defineXML(xml))
        self._invalidate(dom.UUIDString())
        return dom

    def _changed(self, dom: Any) -> None:
        self._invalidate(dom.UUIDString())

    # -- mutations --------------------------------------------------------------------------

    def define(self, spec: DomainSpec) -> None:
        """Ensure the domain is defined as `spec`, marked as ours.  A legacy mark we own
        (no installation, disks in our pool) is rewritten with our installation."""
        dtype = "test" if self._emulated() else None  # None: spec.virt_type
        owner = self._owner()
        try:
            dom = self._lookup(spec.name)
        except NotFound:
            self._define_xml(domxml.render_domain(spec, installation=owner.name, domain_type=dtype))
            return
        current = self._xml(dom, _INACTIVE)
        parsed = domxml.parse_domain(current)
        mark = parsed.mark
        if mark is None or mark.name != spec.name:
            raise Conflict(f"{self.name}: domain {spec.name} exists and is not managed by volctl")
        if domxml.owned_mark(mark, parsed.disks, owner) is None:
            raise Conflict(_not_ours(self.name, spec.name, mark, owner))
        if (mark.vmid, mark.spec_hash, mark.installation) == (
            spec.vmid,
            spec.spec_hash,
            owner.name,
        ):
            return  # already defined with this identity and spec
        xml = domxml.render_domain(
            spec,
            installation=owner.name,
            domain_type=dtype,
            uuid_str=parsed.uuid,
            extra_disks=domxml.volume_disks(current),
        )
        self._define_xml(xml)

    def start(self, name: str) -> None:
        dom = self._lookup_ours(name)
        if self._is_active(dom):
            return
        try:
            self._conn.call("create", lambda _c: dom.create())
        except BackendError:
            if not self._is_active(dom):  # lost a race with another start: fine
                raise
        self._changed(dom)

    def shutdown(self, name: str) -> None:
        dom = self._lookup_ours(name)
        if not self._is_active(dom):
            return
        try:
            self._conn.call("destroy", lambda _c: dom.destroy())
        except BackendError:
            if self._is_active(dom):
                raise
        self._changed(dom)

    def destroy(self, name: str) -> None:
        dom = self._lookup_ours(name)
        if self._is_active(dom):
            try:
                self._conn.call("destroy", lambda _c: dom.destroy())
            except BackendError:
                if self._is_active(dom):
                    raise
        # No NVRAM flag: our guests boot SeaBIOS, and the test driver rejects it.
        flags = (
            libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        )
        with contextlib.suppress(NotFound):  # a transient domain is gone once destroyed
            self._conn.call("undefineFlags", lambda _c: dom.undefineFlags(flags))
        self._changed(dom)


def _not_ours(host: str, domain: str, mark: OwnerMark, owner: Installation) -> str:
    if mark.installation is not None:
        return (
            f"{host}: domain {domain} belongs to volctl installation {mark.installation!r} "
            f"(this one is {owner.name!r})"
        )
    return (
        f"{host}: domain {domain} carries a volctl mark without installation (an older "
        f"volctl's) and its RBD disks are not all in pool {owner.pool}: another installation's"
    )
