"""From one pass's data to the next Snapshot: phases, conditions, ids, events, metrics.

Status is a pure function of (previous snapshot, desired, observed, plan, outcomes), so it is
always written, also after a failed pass (then most inputs are missing and the previous
resources are carried over with the error).  The phase of a resource follows from what the
*latest observation* and the plan computed from it say is left to do; outcomes of this
pass only add events, the last error and the Failed/Detaching nuances.  Conditions keep
their last transition time while their status does not change, like Kubernetes.

Outcomes come from the executor, which this layer does not import; `ActionOutcome` is the
structural shape it needs, and `Result` (in plan/) the vocabulary.  Nothing here ever reads
or stores a key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, assert_never

from reconciler.model import DesiredState, Kind
from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import Action, ActionKind, Blocked, Plan
from reconciler.plan.reasons import BlockReason
from reconciler.plan.results import Result
from reconciler.source.protocol import SourceStatus
from reconciler.status.kinds import Facts, Index, resource_facts
from reconciler.status.types import (
    PASS_BUCKETS,
    Condition,
    ConditionType,
    Event,
    Metrics,
    Phase,
    ResourceStatus,
    Snapshot,
    StorageStatus,
)

MAX_RESOURCE_EVENTS = 20
MAX_SNAPSHOT_EVENTS = 200


class ActionOutcome(Protocol):
    @property
    def action(self) -> Action: ...
    @property
    def result(self) -> Result: ...
    @property
    def message(self) -> str: ...
    @property
    def retry_after(self) -> float | None: ...
    @property
    def ran(self) -> bool: ...


@dataclass(frozen=True)
class PassInput:
    """Everything one pass learned; any part may be missing when the pass failed early."""

    reconcile_id: str
    time: float  # unix time the pass ended
    seconds: float
    desired: DesiredState | None = None
    observed: ObservedWorld | None = None  # the latest observation (after executing, if any)
    plan: Plan | None = None  # planned from `observed`: what is still left to do
    outcomes: Mapping[str, ActionOutcome] = field(default_factory=dict)  # this pass
    source: SourceStatus | None = None
    error: str | None = None  # the pass failed (panic, nothing observable, bad first revision)
    # True when actions ran but the world was not re-observed afterwards (status shows them
    # as progressing until the next pass sees the result)
    unverified: bool = False


_OK_EVENTS: Mapping[ActionKind, str] = {
    ActionKind.IMPORT_IMAGE: "Imported",
    ActionKind.CLONE_ROOT: "RootCloned",
    ActionKind.DEFINE_DOMAIN: "Created",
    ActionKind.START_DOMAIN: "Started",
    ActionKind.STOP_DOMAIN: "Stopped",
    ActionKind.DESTROY_DOMAIN: "Deleted",
    ActionKind.DELETE_ROOT: "RootDeleted",
    ActionKind.CREATE_VOLUME: "Created",
    ActionKind.RESIZE_VOLUME: "Resized",
    ActionKind.SET_VOLUME_META: "Updated",
    ActionKind.DELETE_VOLUME: "Deleted",
    ActionKind.ATTACH_VOLUME: "Attached",
    ActionKind.DETACH_VOLUME: "Detached",
    ActionKind.ATTACH_NIC: "NicAttached",
    ActionKind.DETACH_NIC: "NicDetached",
}
_CONVERGED = (Phase.READY, Phase.STOPPED, Phase.RELEASED)


def settled(r: ResourceStatus) -> bool:
    """Nothing is left to happen to this resource: Ready, Stopped, Released, or an image that
    is imported on first use and not used yet (Pending with nothing planned)."""
    if r.phase in _CONVERGED:
        return True
    return r.kind == Kind.IMAGE and r.phase is Phase.PENDING


_COLLECTION_OF_KIND: Mapping[str, str] = {
    Kind.HOST.value: "hosts",
    Kind.IMAGE.value: "images",
    Kind.INSTANCE_TYPE.value: "instance_types",
    Kind.VIRTUAL_MACHINE.value: "vms",
    Kind.VOLUME.value: "volumes",
    Kind.VOLUME_ATTACHMENT.value: "attachments",
}


def labels_of(desired: DesiredState, kind: str, name: str) -> Mapping[str, str]:
    """metadata.labels of a desired resource ({} when it is not in the spec)."""
    items = getattr(desired, _COLLECTION_OF_KIND.get(kind, ""), None) or {}
    item = items.get(name)
    return item.meta.labels if item is not None else {}


def compute(previous: Snapshot, p: PassInput) -> Snapshot:
    """The snapshot after pass `p` (previous supplies history, transitions and counters)."""
    metrics = pass_metrics(previous.metrics, p)
    if p.desired is None or p.observed is None or p.plan is None:
        return replace(
            previous,
            generation=previous.generation + 1,
            time=p.time,
            converged=False,
            reconcile_id=p.reconcile_id,
            last_pass_seconds=p.seconds,
            last_error=p.error or "pass did not complete",
            source=p.source or previous.source,
            metrics=metrics,
        )
    idx = Index.build(p.desired, p.observed, p.plan)
    by_res: dict[str, list[ActionOutcome]] = {}
    for o in p.outcomes.values():
        by_res.setdefault(o.action.resource, []).append(o)
    resources: dict[str, ResourceStatus] = {}
    new_events: list[Event] = []
    drift = 0
    rev = revision(p.source)
    same_revision = rev is not None and rev == revision(previous.source)
    for facts in resource_facts(idx):
        prev = previous.resources.get(facts.key)
        status, events, corrected = _status(
            facts, prev, idx, by_res.get(facts.key, []), p, same_revision=same_revision
        )
        labels = labels_of(p.desired, facts.kind, facts.name)
        resources[facts.key] = replace(status, labels=labels) if labels else status
        new_events.extend(events)
        drift += corrected
    metrics = replace(metrics, drift_corrections_total=metrics.drift_corrections_total + drift)
    converged = (
        p.error is None
        and p.plan.empty
        and not p.plan.blocked
        and not p.unverified
        and p.observed.all_hosts_known
        and p.observed.storage.reachable
        # the plan can be empty while a resource is not settled (e.g. Detaching)
        and all(settled(r) for r in resources.values())
    )
    return Snapshot(
        generation=previous.generation + 1,
        time=p.time,
        converged=converged,
        reconcile_id=p.reconcile_id,
        last_pass_seconds=p.seconds,
        last_error=p.error,
        resources=resources,
        hosts=idx.host_statuses(),
        source=p.source or previous.source,
        events=(*previous.events, *new_events)[-MAX_SNAPSHOT_EVENTS:],
        pending_actions=len(p.plan.actions),
        metrics=metrics,
        deleted_volumes=(
            p.observed.storage.ids.deleted_volumes
            if p.observed.storage.reachable
            else previous.deleted_volumes
        ),
        storage=storage_status(p.observed),
    )


def storage_status(observed: ObservedWorld) -> StorageStatus:
    """The pool's reachability, with a reason that says it is Ceph that is away."""
    st = observed.storage
    if st.reachable:
        return StorageStatus(pool=st.pool, reachable=True)
    why = st.reason or "not observed"
    reason = f"Ceph pool {st.pool} unknown: {why}"
    return StorageStatus(pool=st.pool, reachable=False, reason=reason)


def revision(src: SourceStatus | None) -> str | None:
    """The source revision a pass planned from (None before any)."""
    return src.last_applied_revision if src is not None else None


Cond = tuple[bool, str, str]  # a condition's (status, reason, message)
_AS_EXPECTED: Cond = (False, "AsExpected", "")


@dataclass(frozen=True)
class _Tally:
    """One resource's outcomes of this pass, sorted by what they mean for its status."""

    failed: list[ActionOutcome]  # ran and failed (transient or terminal)
    terminal: list[ActionOutcome]  # failed for good: waits for a spec change
    requested: list[ActionOutcome]  # a detach asked for, not seen done yet
    retrying: list[ActionOutcome]  # failed or held back, retried after a delay
    ran_ok: list[ActionOutcome]

    @classmethod
    def of(cls, outcomes: list[ActionOutcome]) -> _Tally:
        if not outcomes:  # most resources in most passes: nothing ran for them
            return _NOTHING_RAN

        def having(*results: Result) -> list[ActionOutcome]:
            return [o for o in outcomes if o.result in results]

        return cls(
            failed=[o for o in having(Result.TRANSIENT, Result.TERMINAL) if o.ran],
            terminal=having(Result.TERMINAL),
            requested=having(Result.REQUESTED),
            retrying=having(Result.TRANSIENT, Result.DEFERRED),
            ran_ok=having(Result.OK),
        )

    def error(self) -> str | None:
        first = self.terminal or self.retrying
        return (first[0].message or None) if first else None


_NOTHING_RAN = _Tally([], [], [], [], [])


@dataclass(frozen=True)
class _Verdict:
    """A resource's phase, its three conditions and the error it shows."""

    phase: Phase
    ready: Cond
    progressing: Cond
    degraded: Cond
    error: str | None


def _status(
    f: Facts,
    prev: ResourceStatus | None,
    idx: Index,
    outcomes: list[ActionOutcome],
    p: PassInput,
    *,
    same_revision: bool,
) -> tuple[ResourceStatus, list[Event], int]:
    now = p.time
    blocked = idx.blocked.get(f.key)
    tally = _Tally.of(outcomes)
    v = _verdict(f, prev, blocked, idx.pending.get(f.key, []), tally, unverified=p.unverified)
    conditions = (
        _cond(prev, ConditionType.READY, v.ready, now),
        _cond(prev, ConditionType.PROGRESSING, v.progressing, now),
        _cond(prev, ConditionType.DEGRADED, v.degraded, now),
    )
    drift = same_revision and _is_drift(f, prev)
    why = (blocked.reason, blocked.message) if blocked is not None else None
    events = _events(f, prev, v.phase, (outcomes, tally.failed), now, drift=drift, why=why)
    status = ResourceStatus(
        kind=f.kind,
        name=f.name,
        phase=v.phase,
        conditions=conditions,
        observed_spec_hash=f.observed_hash,
        desired_spec_hash=f.desired_hash,
        last_error=v.error,
        events=((*prev.events, *events) if prev else tuple(events))[-MAX_RESOURCE_EVENTS:],
        ids=f.ids,
        host=f.host,
        pmid=f.pmid,
        details=f.details,
        created=prev.created if prev and prev.created else (now if f.exists else None),
    )
    return status, events, len(tally.ran_ok) if drift else 0


def _verdict(
    f: Facts,
    prev: ResourceStatus | None,
    blocked: Blocked | None,
    pending: list[Action],
    t: _Tally,
    *,
    unverified: bool,
) -> _Verdict:
    """Blocked beats a terminal failure, which beats work in flight; else the facts' phase."""
    busy = bool(pending) or (unverified and bool(t.ran_ok))
    error = t.error()
    if error is None and busy and prev is not None:
        error = prev.last_error
    if blocked is not None:
        r, msg = blocked.reason, blocked.message
        return _Verdict(blocked_phase(r), (False, r, msg), (False, r, ""), (True, r, msg), msg)
    if t.terminal:
        return _Verdict(
            Phase.FAILED,
            (False, "Failed", error or ""),
            (False, "Failed", "waits for a spec change"),
            (True, "Failed", error or ""),
            error,
        )
    if busy or t.requested or f.detaching:
        phase = _busy_phase(f, pending, t.requested)
        detail = ", ".join(a.id for a in pending[:3]) or "verifying"
        degraded = (True, "RetryScheduled", error or "") if t.retrying else _AS_EXPECTED
        return _Verdict(
            phase, (False, "Progressing", detail), (True, str(phase), detail), degraded, error
        )
    ok = f.phase in _CONVERGED
    return _Verdict(
        f.phase,
        (ok, str(f.phase), f.message),
        (False, str(f.phase), ""),
        _AS_EXPECTED if ok else (True, str(f.phase), f.message),
        None if ok else f.message,
    )


def blocked_phase(reason: BlockReason) -> Phase:
    """The phase a resource blocked for `reason` shows (most are plainly Blocked)."""
    match reason:
        case BlockReason.UNSCHEDULABLE:
            return Phase.UNSCHEDULABLE
        case BlockReason.HOST_UNKNOWN | BlockReason.STORAGE_UNKNOWN:
            return Phase.UNKNOWN
        case BlockReason.DETACHING:
            return Phase.DETACHING
        case (
            BlockReason.INVALID_SPEC
            | BlockReason.SHRINK_REFUSED
            | BlockReason.NO_FREE_TARGET
            | BlockReason.NAME_CONFLICT
            | BlockReason.IMAGE_CONFLICT
            | BlockReason.IMAGE_MISSING
            | BlockReason.ROOT_IN_USE
            | BlockReason.VOLUME_IN_USE
            | BlockReason.DEFERRED_WHILE_UNKNOWN
            | BlockReason.DELETE_GUARD
            | BlockReason.VOLUME_NOT_READY
            | BlockReason.VM_NOT_READY
            | BlockReason.DEPENDENCY_BLOCKED
        ):
            return Phase.BLOCKED
        case _:
            assert_never(reason)


def _busy_phase(f: Facts, pending: list[Action], requested: list[ActionOutcome]) -> Phase:
    if requested or f.detaching:
        return Phase.DETACHING
    deleting = (ActionKind.DESTROY_DOMAIN, ActionKind.DELETE_VOLUME, ActionKind.DELETE_ROOT)
    if not f.desired and any(a.kind in deleting for a in pending):
        return Phase.DELETING
    return Phase.PROGRESSING


_SPEC_DETAILS = ("vm", "volume", "size", "reclaimPolicy", "running", "instanceType", "image")


def _is_drift(f: Facts, prev: ResourceStatus | None) -> bool:
    """An action on a resource that was Ready (at the same desired revision, checked by the
    caller) repairs drift; the spec hash and spec fields must be unchanged as well."""
    if prev is None or not f.desired or prev.phase not in (Phase.READY, Phase.STOPPED):
        return False
    if prev.desired_spec_hash != f.desired_hash:
        return False
    return all(prev.details.get(k) == f.details.get(k) for k in _SPEC_DETAILS)


def _cond(
    prev: ResourceStatus | None,
    ctype: ConditionType,
    value: tuple[bool, str, str],
    now: float,
) -> Condition:
    status, reason, message = value
    old = next((c for c in prev.conditions if c.type == ctype), None) if prev else None
    if old is not None and (old.status, old.reason, old.message) == value:
        return old  # unchanged (immutable): no new object per resource and pass
    since = old.last_transition if old is not None and old.status == status else now
    return Condition(ctype, status, reason, message, since)


def _events(
    f: Facts,
    prev: ResourceStatus | None,
    phase: Phase,
    results: tuple[Iterable[ActionOutcome], Iterable[ActionOutcome]],
    now: float,
    *,
    drift: bool,
    why: tuple[str, str] | None,
) -> list[Event]:
    outcomes, failed = results
    out: list[Event] = []
    for o in outcomes:
        a = o.action
        if o.result is Result.OK:
            reason = _OK_EVENTS[a.kind]
            if a.kind is ActionKind.DEFINE_DOMAIN and a.before is not None:
                reason = "Updated"
            out.append(Event(now, "Normal", reason, _describe(a), f.key))
        elif o.result is Result.REQUESTED:
            out.append(Event(now, "Normal", "DetachRequested", o.message, f.key))
    if drift and any(o.result is Result.OK for o in outcomes):
        out.append(Event(now, "Warning", "DriftCorrected", "repaired an out-of-band change", f.key))
    for o in failed:
        if o.result is Result.TERMINAL:
            out.append(Event(now, "Warning", "Failed", f"{o.action.kind}: {o.message}", f.key))
        else:
            wait = f"; retry in {o.retry_after:.1f}s" if o.retry_after is not None else ""
            msg = f"{o.action.kind}: {o.message}{wait}"
            out.append(Event(now, "Warning", "RetryScheduled", msg, f.key))
    if prev is None or prev.phase != phase:
        if phase in (Phase.UNSCHEDULABLE, Phase.BLOCKED, Phase.UNKNOWN):
            reason, msg = why or (str(phase), f.message)
            out.append(Event(now, "Warning", reason, msg or str(phase), f.key))
        elif phase is Phase.RELEASED:
            out.append(Event(now, "Normal", "Released", f.message, f.key))
    return out


def _describe(a: Action) -> str:
    parts = [str(a.kind)]
    if a.host:
        parts.append(f"on {a.host}")
    if a.after:
        parts.append(f"-> {a.after}")
    return " ".join(parts)


def pass_metrics(m: Metrics, p: PassInput) -> Metrics:
    """The counters after pass P: passes, their seconds and histogram, actions by result."""
    buckets = tuple(
        n + (1 if p.seconds <= bound else 0)
        for n, bound in zip(m.pass_buckets, PASS_BUCKETS, strict=True)
    )
    actions = dict(m.actions_total)
    for o in p.outcomes.values():
        key = (str(o.action.kind), str(o.result))
        actions[key] = actions.get(key, 0) + 1
    return replace(
        m,
        passes_total=m.passes_total + 1,
        pass_seconds_sum=m.pass_seconds_sum + p.seconds,
        pass_buckets=buckets,
        actions_total=actions,
    )
