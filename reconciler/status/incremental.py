"""`IncrementalStatus`: the controller's status computation, which does not recompute an
unchanged fleet.

In steady state a pass observes the same world, plans nothing and runs nothing, pass after
pass.  `compute()` is a pure function of (previous snapshot, pass input), and for such a
pass it is a fixed point: every resource keeps its phase, so no event is emitted, every
condition keeps its value and so its transition time (and its very object), and the
snapshot differs from the previous one only in the per-pass fields (generation, time,
reconcile id, pass seconds, source, metrics).  Recomputing it costs ~0.1 s of CPU per 1,000
VMs (3,000 resources), which B7 showed to be the largest part of a steady pass at scale.

So: when the previous snapshot is the one this object produced last, and the new pass input
equals the one that produced it (same desired state, an equal observation, an equal plan,
the same source revision), and neither pass ran an action, was unverified or failed, the
result is the previous snapshot with the per-pass fields advanced.  Anything else computes
from scratch.  tests/status/test_incremental_status.py checks, over recorded fleets and a
sequence of passes, that the answer always equals `compute()`'s.
"""

from __future__ import annotations

from dataclasses import replace

from reconciler.status.compute import PassInput, compute, pass_metrics, revision
from reconciler.status.types import Snapshot


class IncrementalStatus:
    """Callable like `compute`; reuses the last snapshot for an unchanged steady pass."""

    def __init__(self) -> None:
        self._last: tuple[PassInput, Snapshot] | None = None  # replaced whole, never edited
        self.hits = 0
        self.misses = 0

    def __call__(self, previous: Snapshot, p: PassInput) -> Snapshot:
        last = self._last
        if last is not None and previous is last[1] and _steady_repeat(last[0], p):
            out = replace(
                previous,
                generation=previous.generation + 1,
                time=p.time,
                reconcile_id=p.reconcile_id,
                last_pass_seconds=p.seconds,
                source=p.source or previous.source,
                metrics=pass_metrics(previous.metrics, p),
            )
            self.hits += 1
        else:
            out = compute(previous, p)
            self.misses += 1
        self._last = (p, out)
        return out


def _steady_repeat(a: PassInput, b: PassInput) -> bool:
    """B is A again: nothing ran in either, and every input status reads is equal."""
    for p in (a, b):
        if p.outcomes or p.unverified or p.error is not None:
            return False
        if p.desired is None or p.observed is None or p.plan is None:
            return False
    return (
        revision(a.source) == revision(b.source)
        and (a.desired is b.desired or a.desired == b.desired)
        and (a.observed is b.observed or a.observed == b.observed)
        and (a.plan is b.plan or a.plan == b.plan)
    )
