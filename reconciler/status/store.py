"""The controller's in-memory status: one immutable Snapshot, swapped atomically.

Readers (REST, CLI helpers, tests) call `store.snapshot()` and get a complete, consistent
pass without locking; the controller publishes a new Snapshot at the end of every pass, also
when the pass failed (like Flux's deferred `finalizeStatus`).  `update` runs a function of
the current snapshot under the store's lock, so counters bumped from event threads between
passes are never lost, and a host found lost mid-pass turns Unknown at once (`unknown.py`).
Waiters (`wait_for`) let a CLI or a test block until a condition holds instead of polling;
`wait_newer` is what the REST long poll (`?afterGeneration=N`) waits on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from reconciler.status.types import Metrics, Snapshot


class StatusStore:
    def __init__(self, initial: Snapshot | None = None) -> None:
        self._snap = initial or Snapshot()
        self._cond = threading.Condition()

    def snapshot(self) -> Snapshot:
        """The latest published snapshot (immutable; safe to keep and read)."""
        return self._snap

    def publish(self, snap: Snapshot) -> None:
        with self._cond:
            self._snap = snap
            self._cond.notify_all()

    def update(self, fn: Callable[[Snapshot], Snapshot]) -> Snapshot:
        """Atomically replace the snapshot by fn(current); returns the new one."""
        with self._cond:
            self._snap = fn(self._snap)
            self._cond.notify_all()
            return self._snap

    def count_events(self, n: int = 1) -> None:
        """Count libvirt events received (shown in metrics) without waiting for a pass."""

        def bump(s: Snapshot) -> Snapshot:
            m = s.metrics
            metrics: Metrics = replace(m, events_received_total=m.events_received_total + n)
            return replace(s, metrics=metrics)

        self.update(bump)

    def wait_for(
        self, predicate: Callable[[Snapshot], bool], timeout: float | None = None
    ) -> Snapshot | None:
        """Block until a published snapshot satisfies predicate; None on timeout."""
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self._snap), timeout=timeout)
            return self._snap if ok else None

    def wait_newer(self, generation: int, timeout: float) -> Snapshot | None:
        """Block until a pass has published a generation other than `generation` (the REST
        view's long poll: `apply --wait` is woken by the pass, not by a timer)."""
        return self.wait_for(lambda s: s.generation != generation, timeout)
