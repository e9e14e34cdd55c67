"""How one action ended, as a value: the executor never raises into the loop.

Like kopf's `Outcome`, every action run by the executor ends as exactly one of these, and
status, metrics, logs and the retry timer are all computed from them.  `REQUESTED` is the
"asked, not yet observed" state of a detach: it is not a success, so dependents (the attach
half of a move) do not run, and the next pass tries again.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.plan.actions import Action
from reconciler.plan.results import Result

__all__ = ["Outcome", "Result"]


@dataclass(frozen=True)
class Outcome:
    action: Action
    result: Result
    message: str = ""
    retry_after: float | None = None  # seconds, for REQUESTED / TRANSIENT / DEFERRED
    duration: float = 0.0  # seconds spent in backend calls (and the detach wait)
    blocked_by: str | None = None  # for SKIPPED: the dependency that did not succeed
    ran: bool = True  # False when no backend call was made (skipped, deferred, held terminal)

    @property
    def ok(self) -> bool:
        return self.result is Result.OK
