"""How an action can end: the vocabulary shared by the executor (writer) and status (reader).

The executor turns every action into an `Outcome` carrying one of these; status turns them
into phases, events and metrics.  The enum lives here, next to the action vocabulary it
completes, so that status can match on it without importing the executor (status sits
above plan and beside execute in the layer table).  The values are what logs, metrics
(`volctl_actions_total{result=...}`) and REST already show.
"""

from __future__ import annotations

from enum import StrEnum


class Result(StrEnum):
    OK = "ok"
    REQUESTED = "requested"  # detach asked for; the disk is still in the live domain
    TRANSIENT = "transient"  # failed, retried after `retry_after`
    TERMINAL = "terminal"  # failed, not retried until the planned action changes
    DEFERRED = "deferred"  # not run: still backing off from an earlier failure
    SKIPPED = "skipped"  # not run: a dependency did not succeed

    @property
    def failed(self) -> bool:
        return self in (Result.TRANSIENT, Result.TERMINAL)
