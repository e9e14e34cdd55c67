"""A pass's verifying observation, begun on the pool as soon as the pass stops changing it.

After executing, a pass observes again so that status reports what *is* (passes.py).  The
hosts are cheap to re-observe (one call each, plus the XML of domains that changed), the
pool is not: it lists and opens every image.  Done after the last action, that pool read
was most of the time a converge spent after its work was finished (bench B1: 6 s of a
32 s pass, 30 s - the observe deadline - on a loaded machine).  But the pool's contents
change only through the pool actions (imports, clones, creates, resizes, image-meta,
removals), which the executor starts before anything else (execute/priority.py):
everything behind them is domain work.  So the pool is
re-observed once every pool action of the plan has its outcome, while the domain actions go
on, and only the hosts are observed after the last action.

What that observation can miss is the watchers a qemu adds or drops later in the pass (a
start or an attach opens an image).  The planner reads watchers only to refuse creating or
removing over an image that an unseen client holds, status shows their count as a detail,
and a verify observation feeds status and the requeue decision, never actions: the next
pass re-observes everything before it acts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from reconciler.controller.connections import Connections
from reconciler.execute.priority import POOL_KINDS
from reconciler.model import DesiredState
from reconciler.observe.types import ObservedStorage, ObservedWorld
from reconciler.plan.actions import Action


def pool_actions(actions: Iterable[Action]) -> frozenset[str]:
    return frozenset(a.id for a in actions if a.kind in POOL_KINDS)


class Reobservation:
    """Begin the pool's observation early (`begin_pool`), finish with the hosts (`world`)."""

    def __init__(self, connections: Connections, desired: DesiredState) -> None:
        self.connections = connections
        self.desired = desired
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pool: ObservedStorage | None = None

    def begin_pool(self) -> None:
        """Start observing the pool on a thread of its own (once; later calls do nothing)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._observe_pool, name="verify-pool", daemon=True
            )
            self._thread.start()

    def _observe_pool(self) -> None:
        try:
            pool = self.connections.observe_storage(self.desired)
        except Exception as exc:  # noqa: BLE001 - reported as an unknown pool, like observe()
            pool = ObservedStorage(reachable=False, reason=f"storage: {type(exc).__name__}: {exc}")
        self._pool = pool

    def world(self) -> ObservedWorld:
        """The hosts observed now, with the pool observed since the last pool action."""
        self.begin_pool()  # a plan without pool actions, or a run that never got there
        hosts = self.connections.observe_hosts(self.desired)
        assert self._thread is not None
        self._thread.join()  # observe_storage keeps the observer's deadline
        pool = self._pool or ObservedStorage(reachable=False, reason="storage: not observed")
        return ObservedWorld(hosts=hosts, storage=pool)
