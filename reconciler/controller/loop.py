"""The control loop: wait for a trigger, run a pass, decide when the next one is due.

What wakes the loop (a source change, a libvirt event, the jittered resync, a retry timer,
a requeue after progress) only changes *when* the next pass runs, never *what* it does.
After each pass the loop arms: the resync timer; a retry timer for the earliest backed-off
action; and, when the pass made progress but work remains (a step that needs a fresh
observation, like attaching after a detach completed), a short requeue that backs off if
progress keeps not converging (a guest that dies right after every start cannot spin the
loop).  `stop()` ends the loop: the pass in progress lets its running calls finish (each
has a timeout), starts no new action, writes status and returns (see Engine.stop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from reconciler.backends.protocols import EventKind
from reconciler.controller.passes import Engine, PassResult
from reconciler.controller.triggers import (
    EVENT,
    REQUEUE,
    RESYNC,
    RETRY,
    SOURCE,
    START,
    Resync,
    Triggers,
)
from reconciler.execute.handlers import DeviceEvents
from reconciler.status.store import StatusStore
from reconciler.status.types import Snapshot
from reconciler.status.unknown import hosts_unknown

log = structlog.get_logger("volctl.controller")


@dataclass(frozen=True)
class LoopSettings:
    resync: Resync = field(default_factory=Resync)
    event_coalesce: float = 1.0  # events within this window share one pass
    requeue_min: float = 0.2
    requeue_max: float = 10.0


LOST = "connection lost; reconnecting"


class EventSink:
    """The callback given to every Hypervisor.watch_events: count, wake detach waits, kick.

    A lost connection also turns its host Unknown in status at once (a pass may be busy
    elsewhere for a while; status/unknown.py), and a restored one is a reason to look again
    like any event: what happened while it was down was never reported."""

    def __init__(
        self, store: StatusStore, devices: DeviceEvents, triggers: Triggers, coalesce: float
    ) -> None:
        self.store = store
        self.devices = devices
        self.triggers = triggers
        self.coalesce = coalesce

    def __call__(self, host: str, kind: str, domain: str) -> None:
        self.devices.notify(host, kind, domain)
        delay = self.coalesce
        if kind == EventKind.CONNECTION_LOST:
            log.warning("host.connection_lost", host=host)
            self.store.update(lambda snap: hosts_unknown(snap, {host: LOST}))
        elif kind == EventKind.CONNECTION_RESTORED:
            log.info("host.reconnected", host=host)
            delay = 0.0  # one reconnect is no burst; the healing pass should not wait
        self.store.count_events()
        self.triggers.kick_after(EVENT, delay)


class Controller:
    def __init__(
        self,
        engine: Engine,
        triggers: Triggers,
        *,
        settings: LoopSettings | None = None,
    ) -> None:
        self.engine = engine
        self.triggers = triggers
        self.settings = settings or LoopSettings()
        self._requeues = 0
        self.passes = 0

    @property
    def store(self) -> StatusStore:
        return self.engine.store

    def watch_source(self) -> None:
        """Start the source's watch (store directory / git poll); changes kick a pass."""
        self.engine.source.watch(lambda: self.triggers.kick(SOURCE))

    def refresh_source(self) -> None:
        """Fetch the source at once, not when its poll interval says (a push webhook)."""
        self.engine.source.refresh()
        self.triggers.kick(SOURCE)

    def run(
        self,
        *,
        max_passes: int | None = None,
        after_pass: Callable[[PassResult], None] | None = None,
    ) -> Snapshot:
        """Run passes until stop() (or max_passes); returns the last snapshot.

        AFTER_PASS is called with each finished pass (the service reports readiness to
        systemd after the first one)."""
        self.triggers.kick(START)
        while not self.triggers.stopped:
            reasons = self.triggers.wait()
            if not reasons:
                break
            result = self.engine.run_pass(frozenset(reasons))
            self.passes += 1
            if self.engine.stopping.is_set():  # stop() arrived during the pass
                break
            self.arm(result)
            if after_pass is not None:
                after_pass(result)
            if max_passes is not None and self.passes >= max_passes:
                break
        return self.store.snapshot()

    def run_until_converged(self, *, max_passes: int = 10) -> PassResult:
        """Passes back to back while they make progress (for `volctl run --once`)."""
        result = self.engine.run_pass(frozenset({START}))
        for _ in range(max_passes - 1):
            if result.snapshot.converged or not result.progressed:
                break
            result = self.engine.run_pass(frozenset({REQUEUE}))
        return result

    def arm(self, result: PassResult) -> None:
        """Set the timers that decide when the next pass runs."""
        s = self.settings
        self.triggers.replace(RESYNC, s.resync.next_delay(self.triggers.rng.random))
        now = self.engine.clock()
        due = self.engine.retry.next_due(now)
        if due is not None:
            self.triggers.replace(RETRY, max(0.0, due - now))
        else:
            self.triggers.cancel(RETRY)
        remaining = result.remaining
        if result.progressed and remaining is not None and not remaining.empty:
            delay = min(s.requeue_max, s.requeue_min * (2**self._requeues))
            self._requeues += 1
            self.triggers.kick_after(REQUEUE, delay)
        elif result.snapshot.converged or result.report is None:
            self._requeues = 0

    def stop(self) -> None:
        """End the loop; a pass in progress starts no new action and returns soon."""
        self.triggers.stop()
        self.engine.stop()


__all__ = ["EVENT", "Controller", "EventSink", "LoopSettings"]
