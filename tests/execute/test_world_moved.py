"""An action that finds its object gone is retried, not held until a spec change (found by
the reliability soak, seed 1366319006).

The soak undefined a VM's domain by hand (`virsh undefine`) between volctl's observation and
its start-domain.  The start failed with NotFound, which the executor took as terminal and
remembered with the action's fingerprint; the next pass re-defined the domain and planned
the very same start-domain, which was then held "terminal" pass after pass: the VM stayed
shut off, and a volume moved to it waited forever, until someone changed its spec.
NotFound means the world moved since it was observed, so it is transient now: the action is
retried after its backoff, against the next observation.
"""

from __future__ import annotations

from reconciler.execute.outcome import Result
from reconciler.plan.actions import Plan

from .test_executor import IMPORT, World, vm_actions


def test_a_start_whose_domain_was_undefined_by_hand_runs_again_after_the_redefine() -> None:
    w = World()
    clone, define, start = vm_actions("a", "h1")
    assert w.executor.run(Plan(actions=(IMPORT, clone, define))).all_ok
    del w.hvs["h1"].domains["a"]  # `virsh undefine` after volctl observed the domain

    r1 = w.executor.run(Plan(actions=(start,)))  # planned from the stale observation
    assert r1.outcomes[start.id].result is Result.TRANSIENT
    assert "NotFound" in r1.outcomes[start.id].message

    w.now += 60  # past the backoff; the next pass sees no domain and defines it again
    r2 = w.executor.run(Plan(actions=(IMPORT, clone, define, start)))
    assert r2.all_ok, {k: (o.result, o.message) for k, o in r2.outcomes.items()}
    assert w.running("h1") == {"a"}
