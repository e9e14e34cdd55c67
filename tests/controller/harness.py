"""Harness for controller tests: a settable in-memory source, spec builders, and a wired
controller (real planner, executor, status and loop) over given backends.  The `harnesses`
fixture that stops them is in conftest.py."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.backends.protocols import Hypervisor, Storage
from reconciler.controller.connections import StaticConnections
from reconciler.controller.loop import Controller, EventSink, LoopSettings
from reconciler.controller.passes import Engine, EngineSettings, Planner
from reconciler.controller.triggers import Resync, Triggers
from reconciler.execute.handlers import DeviceEvents
from reconciler.execute.retry import Backoff, RetryTracker
from reconciler.model import (
    DesiredState,
    Host,
    Image,
    ImageSource,
    InstanceType,
    Meta,
    ReclaimPolicy,
    VirtualMachine,
    Volume,
    VolumeAttachment,
)
from reconciler.payload import CephAccess
from reconciler.plan.settings import PlanSettings
from reconciler.source.protocol import Revision, SourceStatus
from reconciler.status.store import StatusStore
from reconciler.status.types import Snapshot

CEPH = CephAccess(
    monitors=(("127.0.0.1", 6789),),
    auth_user="admin",
    secret_uuid="0b8f6a55-3c1d-4e0f-9b2a-5d6e7f809a1b",
)
SETTINGS = PlanSettings(ceph=CEPH, console_dir="/tmp/consoles")
BASE = "rbd/base@base"


class MemorySource:
    """A Source whose revisions a test sets; `set()` also fires the watch like a file change."""

    kind = "store"
    url = "memory://test"

    def __init__(self, state: DesiredState | None = None) -> None:
        self._n = 0
        self._rev = Revision("r0", state)
        self._cb: Callable[[], None] | None = None
        self._good: str | None = None  # the last revision that had a desired state
        self._lock = threading.Lock()
        self.fetches = 0
        if state is not None:
            self.set(state)

    def set(self, state: DesiredState | None, errors: tuple[str, ...] = ()) -> None:
        with self._lock:
            self._n += 1
            self._rev = Revision(f"r{self._n}", state, errors)
            if state is not None:
                self._good = self._rev.revision
        if self._cb is not None:
            self._cb()

    def fetch(self) -> Revision:
        with self._lock:
            self.fetches += 1
            return self._rev

    def watch(self, on_change: Callable[[], None]) -> None:
        self._cb = on_change

    def refresh(self) -> None:
        pass

    def status(self) -> SourceStatus:
        with self._lock:
            rev = self._rev
        return SourceStatus(
            self.kind,
            self.url,
            last_applied_revision=self._good,
            last_attempted_revision=rev.revision,
            error="\n".join(rev.errors) or None,
        )

    def close(self) -> None:
        pass


def spec(
    hosts: Mapping[str, str],
    vms: Mapping[str, str | None] | None = None,
    volumes: Mapping[str, int] | None = None,
    attachments: Mapping[str, tuple[str, str]] | None = None,
    *,
    capacity: tuple[int | None, int | None] = (None, None),
    delete: frozenset[str] = frozenset(),
    stopped: frozenset[str] = frozenset(),
) -> DesiredState:
    """hosts: name -> uri (pmid in order); vms: name -> pinned host or None;
    volumes: name -> GiB (Retain unless in `delete`); attachments: name -> (volume, vm)."""
    cpu, ram = capacity
    return DesiredState(
        hosts={
            n: Host(Meta(n), uri=u, pmid=i, cpu_capacity=cpu, ram_capacity_mib=ram)
            for i, (n, u) in enumerate(hosts.items(), start=1)
        },
        images={"base": Image(Meta("base"), 1, ImageSource(rbd=BASE))},
        instance_types={
            "small": InstanceType(Meta("small"), 1, 1, 512, 1),
            "big": InstanceType(Meta("big"), 2, 4, 4096, 2),
        },
        vms={
            n: VirtualMachine(Meta(n), "small", "base", host=h, running=n not in stopped)
            for n, h in (vms or {}).items()
        },
        volumes={
            n: Volume(Meta(n), g, ReclaimPolicy.DELETE if n in delete else ReclaimPolicy.RETAIN)
            for n, g in (volumes or {}).items()
        },
        attachments={
            n: VolumeAttachment(Meta(n), v, m) for n, (v, m) in (attachments or {}).items()
        },
    )


class FakeClock:
    """Simulated seconds: `Harness.run_due` moves it to the next due timer, so a test sees
    the passes that minutes of backoff would bring without waiting for them."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    source: MemorySource
    engine: Engine
    controller: Controller
    store: StatusStore
    hypervisors: Mapping[str, Hypervisor]
    storage: Storage
    thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        self.controller.watch_source()

        def body() -> None:
            try:
                self.controller.run()
            except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
                self.errors.append(exc)

        self.thread = threading.Thread(target=body, name="controller", daemon=True)
        self.thread.start()

    def run_due(self, clock: FakeClock, until: float, max_passes: int = 50) -> list[float]:
        """What `Controller.run` does, on simulated time: jump to the next due timer, run that
        pass, arm the timers, until nothing is due before `until` (or `max_passes`, which only
        a hot loop reaches).  Returns the simulated start time of every pass."""
        triggers = self.controller.triggers
        started: list[float] = []
        while len(started) < max_passes:
            due = triggers.next_due()
            if due is None or due >= until:
                break
            clock.now = max(clock.now, due)
            started.append(clock.now)
            result = self.engine.run_pass(frozenset(triggers.wait(timeout=0)))
            self.controller.arm(result)
        clock.now = max(clock.now, until)
        return started

    def wait(self, pred: Callable[[Snapshot], bool], timeout: float = 15.0) -> Snapshot:
        snap = self.store.wait_for(pred, timeout=timeout)
        assert snap is not None, f"timed out; last snapshot: {_brief(self.store.snapshot())}"
        return snap

    def converged(self, timeout: float = 15.0) -> Snapshot:
        return self.wait(lambda s: s.converged, timeout)

    def stop(self) -> None:
        self.controller.stop()
        if self.thread is not None:
            self.thread.join(timeout=30)
            assert not self.thread.is_alive()
        assert not self.errors, self.errors


def _brief(s: Snapshot) -> str:
    bad = {
        k: (str(r.phase), r.last_error)
        for k, r in s.resources.items()
        if str(r.phase) not in ("Ready", "Stopped", "Released")
    }
    return f"gen={s.generation} converged={s.converged} error={s.last_error} pending={bad}"


def build(
    hypervisors: Mapping[str, Hypervisor],
    storage: Storage,
    state: DesiredState | None,
    *,
    planner: Planner | None = None,
    detach_wait: float = 1.0,
    detach_reask: float = 0.3,  # production: 10 s (a guest-friendly interval)
    resync: float = 0.5,
    clock: FakeClock | None = None,
) -> Harness:
    """A wired controller; with `clock`, its timers, retry backoff and status times run on
    that simulated clock (drive it with `Harness.run_due`), else on the real ones."""
    store = StatusStore()
    devices = DeviceEvents()
    triggers = Triggers(rng=random.Random(3), clock=clock or time.monotonic)
    loop = LoopSettings(resync=Resync(resync, 0.1), event_coalesce=0.05, requeue_min=0.05)
    sink = EventSink(store, devices, triggers, loop.event_coalesce)
    conns = StaticConnections(hypervisors, storage, on_event=sink)
    source = MemorySource(state)
    engine = Engine(
        source,
        conns,
        SETTINGS,
        store,
        settings=EngineSettings(
            detach_wait=detach_wait, detach_poll=0.05, detach_reask=detach_reask
        ),
        retry=RetryTracker(Backoff((0.2, 0.4, 0.8), jitter=0.1), random.Random(5)),
        planner=planner,
        events=devices,
        clock=clock or time.time,
    )
    controller = Controller(engine, triggers, settings=loop)
    return Harness(source, engine, controller, store, hypervisors, storage)
