"""Retry bookkeeping across passes: backoff as data, and which actions are waiting or stopped.

The executor never sleeps to retry.  A transient failure ends the action with an `Outcome`
carrying a delay; this tracker remembers, per action id, how often it failed and when it is
due again, so later passes skip it until then (the controller arms a timer for the earliest
due time).  A terminal failure is remembered with the action's fingerprint: the same action
is not tried again until the planner asks for something different (a spec change), like
kopf's `PermanentError`.  The delays are a tuple (kopf's `backoff` setting) and the jitter's
random source is injected, so tests are deterministic.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from reconciler.plan.actions import Action

DEFAULT_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: the n-th failure waits delays[n-1] (the last one caps it).

    Each delay is multiplied by a factor drawn uniformly from [1 - jitter, 1 + jitter], so
    many resources failing together do not retry in lockstep.
    """

    delays: tuple[float, ...] = DEFAULT_DELAYS
    jitter: float = 0.2

    def delay(self, failures: int, rnd: Callable[[], float]) -> float:
        if not self.delays:
            return 0.0
        base = self.delays[min(max(failures, 1), len(self.delays)) - 1]
        factor = 1.0 + self.jitter * (2.0 * rnd() - 1.0)
        return max(0.0, base * factor)


# Fields that say nothing about what an action does (display, ordering, the derived id).
_NOT_DOING = frozenset({"id", "depends_on", "before", "after", "reason"})


def fingerprint(action: Action) -> tuple[object, ...]:
    """What the action would do: its kind and payload, without display fields or dependencies."""
    return (
        action.kind,
        *((f.name, getattr(action, f.name)) for f in fields(action) if f.name not in _NOT_DOING),
    )


@dataclass
class _Entry:
    failures: int = 0
    due: float = 0.0
    error: str = ""
    terminal_fp: tuple[object, ...] | None = None


@dataclass(frozen=True)
class Hold:
    """Why an action is not run in this pass."""

    terminal: bool
    error: str
    due: float = 0.0  # for transient holds: when it may run again
    failures: int = 0


@dataclass
class RetryTracker:
    """Per-action failure state; shared by passes, safe to use from executor threads."""

    backoff: Backoff = field(default_factory=Backoff)
    rng: random.Random = field(default_factory=random.Random)
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hold(self, action: Action, now: float) -> Hold | None:
        """The reason to skip this action now, or None when it may run."""
        with self._lock:
            e = self._entries.get(action.id)
            if e is None:
                return None
            if e.terminal_fp is not None:
                if e.terminal_fp == fingerprint(action):
                    return Hold(terminal=True, error=e.error, failures=e.failures)
                # the planner wants something else now: give it a fresh start
                del self._entries[action.id]
                return None
            if e.due > now:
                return Hold(terminal=False, error=e.error, due=e.due, failures=e.failures)
            return None

    def failed(
        self, action: Action, error: str, now: float, *, terminal: bool, min_delay: float = 0.0
    ) -> float:
        """Record a failure; returns the retry delay (0 for terminal failures).

        MIN_DELAY floors the backoff: a requested detach is asked again only after a
        guest-friendly interval (re-asking too early cancels a PCIe unplug in progress)."""
        with self._lock:
            e = self._entries.setdefault(action.id, _Entry())
            e.failures += 1
            e.error = error
            if terminal:
                e.terminal_fp = fingerprint(action)
                e.due = 0.0
                return 0.0
            delay = max(min_delay, self.backoff.delay(e.failures, self.rng.random))
            e.due = now + delay
            return delay

    def succeeded(self, action: Action) -> None:
        with self._lock:
            self._entries.pop(action.id, None)

    def forget_missing(self, planned: set[str]) -> None:
        """Drop state of actions the planner no longer asks for (the world moved on)."""
        with self._lock:
            for key in [k for k in self._entries if k not in planned]:
                del self._entries[key]

    def next_due(self, now: float | None = None) -> float | None:
        """Earliest time a held transient action may run again.

        With `now`, only dues still ahead count: an action whose due time has passed and
        that still has an entry did not run because it waits for something else (a detach
        still in backoff, a dependency that failed), and a retry timer for it would fire at
        once after every pass - a hot loop.  Its dependency carries the timer that matters.
        """
        with self._lock:
            dues = [
                e.due
                for e in self._entries.values()
                if e.terminal_fp is None and e.due and (now is None or e.due > now)
            ]
        return min(dues) if dues else None

    def failures(self, action_id: str) -> int:
        with self._lock:
            e = self._entries.get(action_id)
            return e.failures if e else 0
