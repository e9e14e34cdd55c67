"""Requested detaches, watched without holding an executor slot.

Why: a virtio unplug finishes only when the guest lets go of the device, which takes from a
few hundred milliseconds (a booted Linux guest) to forever (a paused guest, a domain with no
OS).  A handler that waited for it in its worker held a per-host slot for the whole wait, so
a stuck detach delayed unrelated work on the same host, and a wait that ran out was asked
again at once: re-asking too early cancels a PCIe unplug in progress (lab notes).

So the detach handler only *asks* and looks once (`DetachPending` carries how to look again);
the executor parks the action here and frees its slot.  While the run has other work, a
parked detach is probed again whenever a host reports a device event (DEVICE_REMOVED wakes
it) and every `poll` seconds, on the run's pool but outside the per-host limits.  When the
disk is gone from the live domain the detach ends OK and the action that depends on it (the
attach half of a move) runs in the same pass.  When nothing else is left to run, the run
lingers at most `linger` seconds for a parked detach that an action of this plan waits for,
and not at all for one nobody waits for: then it ends REQUESTED and the DEVICE_REMOVED event
(or the retry timer) brings the next pass, which observes the disk gone.  A REQUESTED detach
is asked again only after `reask` seconds (`RetryTracker.failed(min_delay=...)`), a
guest-friendly interval longer than the 5 s in which a second PCIe attention-button press
cancels the first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from reconciler.execute.handlers import DetachPending, DeviceEvents
from reconciler.plan.actions import Action


@dataclass
class _Parked:
    action: Action
    still_present: Callable[[], bool]
    message: str
    started: float  # monotonic: when the action started (its Outcome's duration)
    parked: float  # monotonic: when the request was made


@dataclass
class DetachWatch:
    """The parked detaches of one `Executor.run`."""

    events: DeviceEvents
    poll: float = 0.5  # re-probe period without events
    linger: float = 2.0  # longest the run waits for a detach once nothing else runs
    wait: float = 15.0  # longest any detach is watched in one run
    clock: Callable[[], float] = time.monotonic
    _parked: dict[str, _Parked] = field(default_factory=dict)
    _probing: dict[Future[bool], str] = field(default_factory=dict)
    _seen: int = -1
    _last_probe: float = 0.0
    _idle_since: float | None = None

    def __bool__(self) -> bool:
        return bool(self._parked)

    def park(self, action: Action, pending: DetachPending, started: float) -> None:
        now = self.clock()
        self._parked[action.id] = _Parked(action, pending.still_present, str(pending), started, now)
        self._seen = self.events.seq()
        self._last_probe = now

    def futures(self) -> set[Future[bool]]:
        return set(self._probing)

    def owns(self, fut: Future[bool]) -> bool:
        return fut in self._probing

    def probe_due(self, pool: ThreadPoolExecutor) -> None:
        """Start a probe of every parked detach on a device event or after `poll`."""
        now, seq = self.clock(), self.events.seq()
        if self._probing or (seq == self._seen and now - self._last_probe < self.poll):
            return
        self._seen, self._last_probe = seq, now
        for aid, p in self._parked.items():
            self._probing[pool.submit(p.still_present)] = aid

    def probed(self, fut: Future[bool]) -> tuple[Action, float] | None:
        """A finished probe: (action, duration) when its disk is gone, else None."""
        aid = self._probing.pop(fut)
        p = self._parked.get(aid)
        if p is None:
            return None
        try:
            present = fut.result()
        except Exception:  # noqa: BLE001 - an unreachable host: left to the next pass
            return None
        if present:
            return None
        del self._parked[aid]
        return p.action, self.clock() - p.started

    def next_wake(self) -> float:
        """Seconds the run may sleep before the watch needs its attention again."""
        return max(0.01, min(0.1, self.poll))

    def expired(self, *, busy: bool) -> list[tuple[Action, str, float]]:
        """Detaches to give up on now, as (action, message, duration).  BUSY: other actions
        still run (watching costs them nothing), so only `wait` bounds the watch."""
        now = self.clock()
        if busy:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        idle = self._idle_since is not None and now - self._idle_since >= self.linger
        out = []
        for aid, p in list(self._parked.items()):
            if idle or now - p.parked >= self.wait:
                del self._parked[aid]
                out.append((p.action, p.message, now - p.started))
        return out

    def give_up_all(self) -> list[tuple[Action, str, float]]:
        now = self.clock()
        out = [(p.action, p.message, now - p.started) for p in self._parked.values()]
        self._parked.clear()
        return out
