"""From a Config to running parts: real backends, plan settings, engine and controller.

The CLI commands (`run`, `reconcile`, `plan`) and the end-to-end tests all build the
controller the same way through here, so what the tests exercise is what users run.
`BackendConnections` follows the desired Host documents: it opens a libvirt connection per
host (with the Host's capacity overrides), registers the event callback on it, reopens it
when its URI or capacity changes and closes hosts that left the spec.  The RBD pool is
opened once.  Nothing here reads a key: librados finds the keyring through the Ceph conf.
"""

from __future__ import annotations

import configparser
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.backends.libvirt_backend import LibvirtHypervisor
from reconciler.backends.protocols import CephAccess, DomainEventCallback, Hypervisor, Storage
from reconciler.backends.rbd_backend import RbdStorage
from reconciler.config import Config
from reconciler.controller.connections import external_snapshots
from reconciler.controller.loop import Controller, EventSink, LoopSettings
from reconciler.controller.passes import Engine, EngineSettings, Planner
from reconciler.controller.triggers import Triggers
from reconciler.execute.handlers import DeviceEvents
from reconciler.execute.retry import RetryTracker
from reconciler.model import DesiredState, Host
from reconciler.observe.observer import Observer
from reconciler.observe.types import ObservedWorld
from reconciler.plan.settings import PlanSettings
from reconciler.source.protocol import Source
from reconciler.status.store import StatusStore

_ADDR = re.compile(r"(?:(v[12]):)?\[?([0-9A-Za-z.\-:]+?)\]?:(\d+)(?:/\d+)?$")


def monitors_from_conf(conf: str) -> tuple[tuple[str, int], ...]:
    """Monitor (host, port) pairs from a ceph.conf `mon host` line, v1 addresses preferred."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read(conf)
    except configparser.Error:
        return ()
    raw = ""
    for section in ("global", "client"):
        for key in ("mon host", "mon_host"):
            if parser.has_option(section, key):
                raw = parser.get(section, key)
    v1: list[tuple[str, int]] = []
    other: list[tuple[str, int]] = []
    for item in re.split(r"[\s,\[\]]+", raw):
        m = _ADDR.match(item.strip())
        if not m:
            continue
        proto, host, port = m.group(1), m.group(2), int(m.group(3))
        (v1 if proto == "v1" or (proto is None and port != 3300) else other).append((host, port))
    return tuple(v1 or other)


def plan_settings(config: Config, *, allow_mass_delete: bool = False) -> PlanSettings:
    ceph = config.ceph
    monitors = ceph.monitors or monitors_from_conf(ceph.conf)
    access = CephAccess(
        monitors=monitors,
        auth_user=ceph.user,
        secret_uuid=ceph.secret_uuid or "",
        pool=ceph.pool,
    )
    return PlanSettings(
        ceph=access, console_dir=config.console_dir, allow_mass_delete=allow_mass_delete
    )


HostOpener = Callable[[Host], Hypervisor]


def open_libvirt(host: Host) -> Hypervisor:
    return LibvirtHypervisor(
        host.meta.name,
        host.uri,
        cpu_capacity=host.cpu_capacity,
        ram_capacity_mib=host.ram_capacity_mib,
    )


class BackendConnections:
    """Connections that follow the desired hosts (implements `Connections`)."""

    def __init__(
        self,
        storage: Storage,
        *,
        on_event: DomainEventCallback | None = None,
        open_host: HostOpener = open_libvirt,
        observe_timeout: float = 30.0,
    ) -> None:
        self._storage = storage
        self._on_event = on_event
        self._open_host = open_host
        self._hosts: dict[str, tuple[tuple[str, int | None, int | None], Hypervisor]] = {}
        self._lock = threading.Lock()
        self._observer = Observer({}, storage, timeout=observe_timeout)

    def sync(self, desired: DesiredState) -> None:
        with self._lock:
            for name in sorted(set(self._hosts) - set(desired.hosts)):
                self._hosts.pop(name)[1].close()
            for name, host in sorted(desired.hosts.items()):
                key = (host.uri, host.cpu_capacity, host.ram_capacity_mib)
                old = self._hosts.get(name)
                if old is not None and old[0] == key:
                    continue
                if old is not None:
                    old[1].close()
                hv = self._open_host(host)
                if self._on_event is not None:
                    hv.watch_events(self._on_event)
                self._hosts[name] = (key, hv)
            self._observer.set_hypervisors({n: hv for n, (_, hv) in self._hosts.items()})

    def hypervisors(self) -> Mapping[str, Hypervisor]:
        with self._lock:
            return {n: hv for n, (_, hv) in self._hosts.items()}

    def storage(self) -> Storage:
        return self._storage

    def observe(self, desired: DesiredState) -> ObservedWorld:
        return self._observer.observe(external_snapshots(desired))

    def close(self) -> None:
        with self._lock:
            for _, hv in self._hosts.values():
                hv.close()
            self._hosts.clear()
        self._storage.close()


@dataclass
class Runtime:
    """Everything `volctl run` keeps alive; `close()` releases connections and watches."""

    controller: Controller
    engine: Engine
    store: StatusStore
    connections: BackendConnections

    def close(self) -> None:
        self.controller.stop()
        self.engine.source.close()
        self.connections.close()


def build_runtime(
    config: Config,
    source: Source,
    *,
    allow_mass_delete: bool = False,
    engine_settings: EngineSettings | None = None,
    loop_settings: LoopSettings | None = None,
    storage: Storage | None = None,
    open_host: HostOpener = open_libvirt,
    planner: Planner | None = None,
) -> Runtime:
    loop = loop_settings or LoopSettings()
    store = StatusStore()
    devices = DeviceEvents()
    triggers = Triggers()
    sink = EventSink(store, devices, triggers, loop.event_coalesce)
    pool = storage or RbdStorage(config.ceph.conf, config.ceph.pool, config.ceph.user)
    conns = BackendConnections(pool, on_event=sink, open_host=open_host)
    engine = Engine(
        source,
        conns,
        plan_settings(config, allow_mass_delete=allow_mass_delete),
        store,
        settings=engine_settings,
        retry=RetryTracker(),
        planner=planner,
        events=devices,
    )
    controller = Controller(engine, triggers, settings=loop)
    return Runtime(controller, engine, store, conns)
