"""From a Config to running parts: real backends, plan settings, engine and controller.

The CLI commands (`run`, `reconcile`, `plan`) and the end-to-end tests all build the
controller the same way through here, so what the tests exercise is what users run.
`BackendConnections` follows the desired Host documents: it opens a libvirt connection per
host (with the Host's capacity overrides), registers the event callback on it, reopens it
when its URI or capacity changes and closes hosts that left the spec.  The RBD pool is
opened once.  Nothing here reads a key: librados finds the keyring through the Ceph conf.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.backends.protocols import DomainEventCallback, Hypervisor, Storage
from reconciler.config import Config
from reconciler.controller.connections import Connections, external_snapshots
from reconciler.controller.factory import ceph_access, hypervisor_for, storage_for
from reconciler.controller.fencing import FencedConnections, Gate
from reconciler.controller.loop import Controller, EventSink, LoopSettings
from reconciler.controller.passes import Engine, EngineSettings, Planner
from reconciler.controller.triggers import Triggers
from reconciler.execute.handlers import DeviceEvents
from reconciler.execute.retry import RetryTracker
from reconciler.model import DesiredState, Host
from reconciler.observe.observer import Observer
from reconciler.observe.types import ObservedHost, ObservedStorage, ObservedWorld
from reconciler.plan.settings import PlanSettings
from reconciler.source.protocol import Source
from reconciler.status.store import StatusStore


def plan_settings(config: Config, *, allow_mass_delete: bool = False) -> PlanSettings:
    return PlanSettings(
        ceph=ceph_access(config.ceph),
        console_dir=config.console_dir,
        default_networks=config.default_networks,
        allow_mass_delete=allow_mass_delete,
    )


HostOpener = Callable[[Host], Hypervisor]


def libvirt_opener(storage: Storage) -> HostOpener:
    """The default HostOpener: the factory's LibvirtHypervisor (capacity overrides,
    timeouts), owning what `storage`'s installation owns."""
    return lambda host: hypervisor_for(host, installation=storage.installation)


class BackendConnections:
    """Connections that follow the desired hosts (implements `Connections`)."""

    def __init__(
        self,
        storage: Storage,
        *,
        on_event: DomainEventCallback | None = None,
        open_host: HostOpener | None = None,
        observe_timeout: float = 30.0,
    ) -> None:
        self._storage = storage
        self._on_event = on_event
        self._open_host = open_host or libvirt_opener(storage)
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

    def observe_hosts(self, desired: DesiredState) -> dict[str, ObservedHost]:
        del desired  # the hosts are those of the last sync()
        return self._observer.observe_hosts()

    def observe_storage(self, desired: DesiredState) -> ObservedStorage:
        return self._observer.observe_storage(external_snapshots(desired))

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
    open_host: HostOpener | None = None,
    planner: Planner | None = None,
    status: StatusStore | None = None,
    fence: tuple[Gate, Callable[[], int]] | None = None,
) -> Runtime:
    """`status`: the store to publish into (an HA leader's starts from the last published
    snapshot); `fence`: (gate, epoch) of an HA replica, checked before every change."""
    loop = loop_settings or LoopSettings()
    store = status or StatusStore()
    devices = DeviceEvents()
    triggers = Triggers()
    sink = EventSink(store, devices, triggers, loop.event_coalesce)
    pool = storage or storage_for(config.ceph, installation=config.installation)
    conns = BackendConnections(pool, on_event=sink, open_host=open_host)
    acting: Connections = conns if fence is None else FencedConnections(conns, *fence)
    engine = Engine(
        source,
        acting,
        plan_settings(config, allow_mass_delete=allow_mass_delete),
        store,
        settings=engine_settings,
        retry=RetryTracker(),
        planner=planner,
        events=devices,
    )
    controller = Controller(engine, triggers, settings=loop)
    return Runtime(controller, engine, store, conns)
