"""One reconcile pass: fetch, observe, plan, execute, verify, and always write status.

Every pass does the same thing whatever woke it (level-based): it re-reads the source,
re-observes every host and the pool, plans, executes, and, if anything ran, observes and
plans once more so status reports what *is*, not what the executor hoped (the pool from
when the pass's last pool action ended, the hosts after the last action: verify.py).  Whatever
happens - an invalid revision, an unreachable Ceph, a bug that raises - the pass ends by
publishing a Snapshot (Flux's deferred `finalizeStatus`).  An invalid revision never stops
reconciliation: the last good desired state stays in force and the error goes to
`Snapshot.source`.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import structlog

from reconciler.controller.connections import Connections
from reconciler.controller.knowledge import CannotPlan
from reconciler.controller.verify import Reobservation, pool_actions
from reconciler.execute.executor import ExecutionReport, Executor, Limits
from reconciler.execute.handlers import Backends, DeviceEvents
from reconciler.execute.retry import RetryTracker
from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import Plan
from reconciler.plan.incremental import IncrementalPlanner
from reconciler.plan.settings import PlanSettings
from reconciler.source.protocol import Revision, Source, SourceStatus
from reconciler.status.compute import PassInput
from reconciler.status.incremental import IncrementalStatus
from reconciler.status.store import StatusStore
from reconciler.status.types import Snapshot
from reconciler.status.unknown import hosts_unknown

log = structlog.get_logger("volctl.controller")

Planner = Callable[[DesiredState, ObservedWorld, PlanSettings], Plan]


@dataclass(frozen=True)
class EngineSettings:
    limits: Limits = field(default_factory=Limits)
    detach_wait: float = 15.0  # longest one pass watches a requested detach (no slot held)
    detach_poll: float = 0.5
    detach_linger: float = 2.0  # longest a pass waits for a detach once nothing else runs
    detach_reask: float = 10.0  # a requested detach is asked again only after this
    verify: bool = True  # re-observe after executing, so status shows observed truth


@dataclass(frozen=True)
class PassResult:
    reconcile_id: str
    snapshot: Snapshot
    plan: Plan | None = None  # what this pass executed
    report: ExecutionReport | None = None
    remaining: Plan | None = None  # planned from the final observation
    error: str | None = None

    @property
    def progressed(self) -> bool:
        return self.report is not None and any(o.ok for o in self.report.outcomes.values())


class Engine:
    """Runs passes against one source, one set of connections and one status store."""

    def __init__(
        self,
        source: Source,
        connections: Connections,
        plan_settings: PlanSettings,
        store: StatusStore,
        *,
        settings: EngineSettings | None = None,
        retry: RetryTracker | None = None,
        planner: Planner | None = None,
        events: DeviceEvents | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.connections = connections
        self.plan_settings = plan_settings
        self.store = store
        self.settings = settings or EngineSettings()
        self.retry = retry or RetryTracker()
        # one planner per engine: a steady pass reuses the last plan (plan/incremental.py)
        self.planner: Planner = planner or IncrementalPlanner()
        self.compute_status = IncrementalStatus()  # compute(), without recomputing a steady pass
        self.events = events or DeviceEvents()
        self.clock = clock
        self.last_good: DesiredState | None = None
        self.last_good_revision: str | None = None
        self.stopping = threading.Event()

    def stop(self) -> None:
        """Wind down (SIGTERM): the pass in progress lets running calls finish, starts no
        new action (they end SKIPPED and are planned again by the next controller), skips the
        verifying observation and still writes status."""
        self.stopping.set()

    def run_pass(self, reasons: frozenset[str] = frozenset()) -> PassResult:
        """One full pass; never raises (except KeyboardInterrupt/SystemExit)."""
        rid = uuid.uuid4().hex[:12]
        bound = log.bind(reconcile_id=rid)
        t0 = time.monotonic()
        bound.info("pass.start", triggers=sorted(reasons))
        st = _PassState()
        try:
            self._run(st, rid, bound)
        except CannotPlan as exc:  # a one-shot command's refusal, not a bug
            st.error = str(exc)
            bound.warning("pass.cannot_plan", error=st.error)
        except Exception as exc:  # noqa: BLE001 - a pass never takes the loop down
            st.error = f"pass failed: {type(exc).__name__}: {exc}"
            bound.exception("pass.panic", error=st.error)
        finally:
            with st.phase("status"):
                snap = self._finalize(st, rid, time.monotonic() - t0)
        bound.info(
            "pass.end",
            duration_ms=round((time.monotonic() - t0) * 1000, 1),
            converged=snap.converged,
            actions=len(st.plan.actions) if st.plan else 0,
            remaining=snap.pending_actions,
            ceph_calls=sum(st.observed.storage.calls.values()) if st.observed else None,
            error=st.error,
            phases_ms={k: round(v * 1000, 1) for k, v in st.phases.items()},
        )
        return PassResult(rid, snap, st.plan, st.report, st.remaining, st.error)

    def _run(self, st: _PassState, rid: str, bound: structlog.typing.FilteringBoundLogger) -> None:
        with st.phase("fetch"):
            st.source = self._fetch(bound)
        desired = self.last_good
        if desired is None:
            errs = st.source.error if st.source else None
            st.error = f"no valid desired state yet: {errs or 'source is empty'}"
            return
        st.desired = desired
        with st.phase("observe"):
            self.connections.sync(desired)
            st.observed = self.connections.observe(desired)
        self._publish_unknown(st.observed)
        with st.phase("plan"):
            st.plan = self.planner(desired, st.observed, self.plan_settings)
        st.remaining = st.plan
        # failures of actions the planner no longer asks for are history, not retry timers; done
        # here, for every plan, because an empty plan never reaches the executor
        self.retry.forget_missing({a.id for a in st.plan.actions})
        if st.plan.empty:
            return
        # before the first action: where the time to it went (B4 takes it apart with this)
        bound.info(
            "pass.planned",
            actions=len(st.plan.actions),
            phases_ms={k: round(v * 1000, 1) for k, v in st.phases.items()},
        )
        verify = Reobservation(self.connections, desired) if self.settings.verify else None
        # the pool is re-observed once the pass stops changing it (controller/verify); a plan
        # without pool actions has it re-observed after the last action, if any ran
        pool = pool_actions(st.plan.actions)
        with st.phase("execute"):
            st.report = self._executor().run(
                st.plan,
                reconcile_id=rid,
                when_done=(pool, verify.begin_pool) if verify is not None and pool else None,
            )
        if st.report.ran and verify is not None and not self.stopping.is_set():
            with st.phase("verify_observe"):
                st.observed = verify.world()
            self._publish_unknown(st.observed)
            with st.phase("verify_plan"):
                st.remaining = self.planner(desired, st.observed, self.plan_settings)
        elif st.report.ran:
            st.unverified = True

    def _publish_unknown(self, observed: ObservedWorld) -> None:
        """Hosts this observation could not see turn Unknown in status now, not when the pass
        (still to plan, execute and verify) ends (status/unknown.py)."""
        lost = {n: h.reason or "unreachable" for n, h in observed.hosts.items() if not h.reachable}
        if lost:
            self.store.update(lambda snap: hosts_unknown(snap, lost))

    def _fetch(self, bound: structlog.typing.FilteringBoundLogger) -> SourceStatus:
        rev: Revision | None = None
        err: str | None = None
        try:
            rev = self.source.fetch()
        except Exception as exc:  # noqa: BLE001 - a broken source must not stop the loop
            bound.warning("source.error", error=str(exc))
            err = f"{type(exc).__name__}: {exc}"
        else:
            err = "\n".join(rev.errors) if rev.errors else None
        if rev is not None and rev.state is not None:
            if rev.revision != self.last_good_revision:
                bound.info("source.revision", revision=rev.revision)
            self.last_good = rev.state
            self.last_good_revision = rev.revision
        elif err:
            bound.warning("source.invalid", revision=rev.revision if rev else None, error=err)
        status = self.source.status()
        if err and not status.error:
            status = replace(status, error=err)
        return status

    def _executor(self) -> Executor:
        backends = Backends(
            self.connections.hypervisors(),
            self.connections.storage(),
            events=self.events,
            detach_wait=self.settings.detach_wait,
            detach_poll=self.settings.detach_poll,
            detach_linger=self.settings.detach_linger,
            detach_reask=self.settings.detach_reask,
            pool=self.plan_settings.pool,
        )
        return Executor(
            backends,
            limits=self.settings.limits,
            retry=self.retry,
            clock=self.clock,
            stopping=self.stopping,
        )

    def _finalize(self, st: _PassState, rid: str, seconds: float) -> Snapshot:
        p = PassInput(
            reconcile_id=rid,
            time=self.clock(),
            seconds=seconds,
            desired=st.desired,
            observed=st.observed,
            plan=st.remaining,
            outcomes=dict(st.report.outcomes) if st.report else {},
            source=st.source,
            error=st.error,
            unverified=st.unverified,
        )
        try:
            return self.store.update(lambda prev: self.compute_status(prev, p))
        except Exception as exc:  # status must still be written
            log.exception("status.error", reconcile_id=rid)
            err = f"status computation failed: {type(exc).__name__}: {exc}"
            return self.store.update(
                lambda prev: replace(
                    prev,
                    generation=prev.generation + 1,
                    time=p.time,
                    converged=False,
                    reconcile_id=rid,
                    last_error=err,
                    source=st.source or prev.source,
                )
            )


@dataclass
class _PassState:
    source: SourceStatus | None = None
    desired: DesiredState | None = None
    observed: ObservedWorld | None = None
    plan: Plan | None = None
    report: ExecutionReport | None = None
    remaining: Plan | None = None
    error: str | None = None
    unverified: bool = False
    phases: dict[str, float] = field(default_factory=dict)  # seconds, for the pass.end log

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - t0
