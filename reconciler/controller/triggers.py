"""Why the loop should run again, reduced to "when": level-based wake-ups.

Sources, libvirt events, the periodic resync and retry timers all end up here as a reason
with a due time.  The loop only ever asks "when is the next pass due?" and gets the set of
reasons back for its logs and metrics; it never branches on them (controller-runtime's
level-based rule).  Bursts coalesce: a reason already scheduled earlier is not pushed back,
and all reasons that are due are drained by one pass.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

SOURCE = "source"
EVENT = "event"
RESYNC = "resync"
RETRY = "retry"
REQUEUE = "requeue"
START = "start"


@dataclass(frozen=True)
class Resync:
    """Periodic full resync: `interval` seconds, jittered by +- `jitter` (a fraction)."""

    interval: float = 30.0
    jitter: float = 0.1

    def next_delay(self, rnd: Callable[[], float]) -> float:
        return max(0.0, self.interval * (1.0 + self.jitter * (2.0 * rnd() - 1.0)))


class Triggers:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self._due: dict[str, float] = {}
        self._cond = threading.Condition()
        self._stopped = False

    def kick(self, reason: str) -> None:
        """Run a pass as soon as possible."""
        self.kick_after(reason, 0.0)

    def kick_after(self, reason: str, delay: float) -> None:
        """Run a pass in `delay` seconds, unless this reason is already due earlier."""
        with self._cond:
            at = self._clock() + max(0.0, delay)
            if reason not in self._due or at < self._due[reason]:
                self._due[reason] = at
                self._cond.notify_all()

    def replace(self, reason: str, delay: float) -> None:
        """Set this reason's due time, earlier or later (for the resync and retry timers)."""
        with self._cond:
            self._due[reason] = self._clock() + max(0.0, delay)
            self._cond.notify_all()

    def cancel(self, reason: str) -> None:
        with self._cond:
            self._due.pop(reason, None)

    def next_due(self) -> float | None:
        with self._cond:
            return min(self._due.values()) if self._due else None

    def wait(self, timeout: float | None = None) -> set[str]:
        """Block until some reason is due (returns and clears all due reasons), stop() is
        called (returns an empty set), or `timeout` passes (returns an empty set)."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._stopped:
                now = self._clock()
                due = {r for r, at in self._due.items() if at <= now}
                if due:
                    for r in due:
                        del self._due[r]
                    return due
                wake = min(self._due.values()) if self._due else None
                if deadline is not None:
                    if now >= deadline:
                        return set()
                    wake = deadline if wake is None else min(wake, deadline)
                self._cond.wait(None if wake is None else max(0.0, wake - now))
            return set()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped
