"""Run a Plan: dependency order, bounded parallelism, one Outcome per action, no decisions.

The plan says what to do and in which order; the executor only makes it happen.  Actions
whose dependencies succeeded run on a thread pool, at most `Limits.per_host` at a time on
one libvirt host and `Limits.overall` in total.  A failed action blocks only the actions
that depend on it (they end SKIPPED); independent work goes on.  Nothing raises out of
`Executor.run`: every action ends as an `Outcome`, and transient failures come back with the
delay after which the controller should try again.  The executor does not believe its own
success: the controller re-observes before it reports anything as done.  When `stopping`
is set (the controller got SIGTERM), actions not yet started end SKIPPED while the running
ones finish: every backend call has a timeout, so stopping never cuts a call in half.

When more actions are ready than slots are free, the one with the most work still behind it
starts first (`priority.py`: a VM's clone -> define -> start chain before a volume create
that only its attach needs); dependencies and limits stay the plan's and the settings'.
`run(..., when_done=(ids, call))` calls `call` once every action in `ids` has its outcome,
while the rest goes on (the pass starts re-observing the pool there, see controller/passes).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import structlog

from reconciler.errors import NotFound, VolctlError
from reconciler.execute.detach_watch import DetachWatch
from reconciler.execute.handlers import Backends, DetachPending, run_action
from reconciler.execute.outcome import Outcome, Result
from reconciler.execute.priority import by_priority
from reconciler.execute.retry import RetryTracker
from reconciler.plan.actions import Action, Plan

log = structlog.get_logger("volctl.execute")


@dataclass(frozen=True)
class Limits:
    per_host: int = 4  # concurrent actions on one libvirt host
    overall: int = 16  # concurrent actions in total (storage actions count here only)


@dataclass(frozen=True)
class ExecutionReport:
    outcomes: Mapping[str, Outcome] = field(default_factory=dict)  # by action id, plan order
    seconds: float = 0.0

    @property
    def all_ok(self) -> bool:
        return all(o.ok for o in self.outcomes.values())

    @property
    def ran(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.ran)

    def retry_after(self) -> float | None:
        """Smallest delay after which some action wants to run again."""
        delays = [o.retry_after for o in self.outcomes.values() if o.retry_after is not None]
        return min(delays) if delays else None

    def by_resource(self) -> dict[str, list[Outcome]]:
        out: dict[str, list[Outcome]] = {}
        for o in self.outcomes.values():
            out.setdefault(o.action.resource, []).append(o)
        return out


_Log = structlog.typing.FilteringBoundLogger


@dataclass
class _RunState:
    """Book-keeping of one `Executor.run`."""

    pending: list[Action]  # highest priority first
    in_plan: set[str]
    done: dict[str, Outcome] = field(default_factory=dict)
    running: dict[Future[Outcome | DetachPending], Action] = field(default_factory=dict)
    per_host: Counter[str] = field(default_factory=Counter)
    watch: DetachWatch | None = None  # requested detaches, watched without a slot


class Executor:
    def __init__(
        self,
        backends: Backends,
        *,
        limits: Limits | None = None,
        retry: RetryTracker | None = None,
        clock: Callable[[], float] = time.time,
        stopping: threading.Event | None = None,
    ) -> None:
        self.backends = backends
        self.limits = limits or Limits()
        self.retry = retry or RetryTracker()
        self.clock = clock
        self.stopping = stopping or threading.Event()

    def run(
        self,
        plan: Plan,
        *,
        reconcile_id: str = "",
        when_done: tuple[Collection[str], Callable[[], None]] | None = None,
    ) -> ExecutionReport:
        t0 = time.monotonic()
        bound = log.bind(reconcile_id=reconcile_id) if reconcile_id else log
        st = _RunState(pending=by_priority(plan.actions), in_plan={a.id for a in plan.actions})
        milestone = None
        if when_done is not None:
            milestone = _Milestone(frozenset(when_done[0]) & st.in_plan, when_done[1])
        workers = max(1, self.limits.overall)
        st.watch = DetachWatch(
            self.backends.events,
            poll=self.backends.detach_poll,
            linger=self.backends.detach_linger,
            wait=self.backends.detach_wait,
        )
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="volctl-exec") as pool:
            while st.pending or st.running or st.watch:
                changed = self._schedule(st, pool, bound)
                if milestone is not None:
                    milestone.check(st.done, bound)
                if st.watch:
                    self._watch_detaches(st, pool, bound)
                    if not st.running and not st.watch:
                        continue
                elif not st.running:
                    if st.pending and not changed:
                        for a in st.pending:  # cannot happen with a valid plan: a cycle
                            st.done[a.id] = Outcome(
                                a, Result.SKIPPED, "dependency cycle", ran=False
                            )
                        st.pending.clear()
                    continue
                futures: set[Future[Any]] = {*st.running, *st.watch.futures()}
                timeout = st.watch.next_wake() if st.watch else None
                finished, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
                for fut in finished:
                    if st.watch.owns(fut):
                        self._probed(st, fut, bound)
                        continue
                    action = st.running.pop(fut)
                    if action.host is not None:
                        st.per_host[action.host] -= 1
                    result = fut.result()
                    if isinstance(result, DetachPending):
                        st.watch.park(action, result, time.monotonic())
                    else:
                        st.done[action.id] = result
        if milestone is not None:
            milestone.check(st.done, bound)
        ordered = {a.id: st.done[a.id] for a in plan.actions}
        for o in ordered.values():
            if not o.ran:
                _log_outcome(bound, o)
        return ExecutionReport(outcomes=ordered, seconds=time.monotonic() - t0)

    def _schedule(self, st: _RunState, pool: ThreadPoolExecutor, bound: _Log) -> bool:
        """Resolve skips and holds, start what may start; True if anything moved."""
        if self.stopping.is_set() and st.pending:
            for action in st.pending:
                st.done[action.id] = Outcome(
                    action, Result.SKIPPED, "controller stopping", retry_after=0.0, ran=False
                )
            st.pending.clear()
            return True
        changed = False
        for action in list(st.pending):
            deps = [d for d in action.depends_on if d in st.in_plan]
            bad = next((d for d in deps if d in st.done and not st.done[d].ok), None)
            if bad is not None:
                why = st.done[bad]
                st.done[action.id] = Outcome(
                    action,
                    Result.SKIPPED,
                    f"waits for {bad} ({why.result})",
                    retry_after=why.retry_after,
                    blocked_by=bad,
                    ran=False,
                )
                st.pending.remove(action)
                changed = True
                continue
            if not all(d in st.done for d in deps):
                continue
            hold = self.retry.hold(action, self.clock())
            if hold is not None:
                if hold.terminal:
                    st.done[action.id] = Outcome(action, Result.TERMINAL, hold.error, ran=False)
                else:
                    wait_s = max(0.0, hold.due - self.clock())
                    st.done[action.id] = Outcome(
                        action, Result.DEFERRED, hold.error, retry_after=wait_s, ran=False
                    )
                st.pending.remove(action)
                changed = True
                continue
            if len(st.running) >= max(1, self.limits.overall):
                break
            host = action.host
            if host is not None and st.per_host[host] >= max(1, self.limits.per_host):
                continue
            if host is not None:
                st.per_host[host] += 1
            st.running[pool.submit(self._run_one, action, bound)] = action
            st.pending.remove(action)
            changed = True
        return changed

    def _watch_detaches(self, st: _RunState, pool: ThreadPoolExecutor, bound: _Log) -> None:
        """Probe parked detaches when due; end as REQUESTED those the run stops waiting for."""
        assert st.watch is not None
        if self.stopping.is_set():
            expired = st.watch.give_up_all()
        else:
            expired = st.watch.expired(busy=bool(st.running))
            st.watch.probe_due(pool)
        for action, msg, seconds in expired:
            delay = self.retry.failed(
                action, msg, self.clock(), terminal=False, min_delay=self.backends.detach_reask
            )
            o = Outcome(action, Result.REQUESTED, msg, retry_after=delay, duration=seconds)
            st.done[action.id] = o
            _log_outcome(bound, o)

    def _probed(self, st: _RunState, fut: Future[Any], bound: _Log) -> None:
        assert st.watch is not None
        gone = st.watch.probed(fut)
        if gone is not None:
            action, seconds = gone
            self.retry.succeeded(action)
            st.done[action.id] = Outcome(action, Result.OK, duration=seconds)
            _log_outcome(bound, st.done[action.id])

    def _run_one(self, action: Action, bound: _Log) -> Outcome | DetachPending:
        t0 = time.monotonic()
        try:
            run_action(action, self.backends)
        except DetachPending as exc:
            return exc  # parked by the run: watched without holding this slot
        except NotFound as exc:
            # the object the action needs went away after the observation it was planned
            # from (a `virsh undefine` by hand): the next pass re-plans from a fresh one.
            # Terminal, it was held with an unchanged fingerprint even after the planner
            # re-created the object (soak, seed 1366319006)
            outcome = self._failed(action, Result.TRANSIENT, f"NotFound: {exc}", t0)
        except VolctlError as exc:
            result = Result.TRANSIENT if exc.retryable else Result.TERMINAL
            outcome = self._failed(action, result, f"{type(exc).__name__}: {exc}", t0)
        except Exception as exc:  # noqa: BLE001 - unknown errors are transient, never fatal
            outcome = self._failed(action, Result.TRANSIENT, f"{type(exc).__name__}: {exc}", t0)
        else:
            self.retry.succeeded(action)
            outcome = Outcome(action, Result.OK, duration=time.monotonic() - t0)
        _log_outcome(bound, outcome)
        return outcome

    def _failed(self, action: Action, result: Result, msg: str, t0: float) -> Outcome:
        terminal = result is Result.TERMINAL
        delay = self.retry.failed(action, msg, self.clock(), terminal=terminal)
        return Outcome(
            action,
            result,
            msg,
            retry_after=None if terminal else delay,
            duration=time.monotonic() - t0,
        )


@dataclass
class _Milestone:
    """A call due once every action in `ids` has its outcome (ids not in the plan count as
    done: they are not this run's to wait for)."""

    ids: frozenset[str]
    call: Callable[[], None]
    fired: bool = False

    def check(self, done: Mapping[str, Outcome], bound: _Log) -> None:
        if self.fired or not all(i in done for i in self.ids):
            return
        self.fired = True
        try:
            self.call()
        except Exception:  # noqa: BLE001 - the caller's hook must not stop the run
            bound.exception("execute.milestone_failed")


def _log_outcome(bound: _Log, o: Outcome) -> None:
    fields: dict[str, object] = {
        "action": o.action.id,
        "kind": str(o.action.kind),
        "resource": o.action.resource,
        "host": o.action.host,
        "result": str(o.result),
        "duration_ms": round(o.duration * 1000, 1),
    }
    if o.message:
        fields["error"] = o.message
    if o.retry_after is not None:
        fields["retry_in_s"] = round(o.retry_after, 2)
    if o.ok:
        bound.info("action", **fields)
    else:
        bound.warning("action", **fields)
