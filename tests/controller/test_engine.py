"""The controller on a simulated world with the real planner, executor and status.

These cover the loop's promises that do not depend on libvirt itself: status is always
written, bad revisions keep the last good one in force, panics are recorded, transient
failures are retried on the backoff timer, detach is awaited, volumes are kept on removal.
"""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from reconciler.errors import Terminal, Transient
from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import Plan
from reconciler.plan.settings import PlanSettings
from reconciler.status.types import ConditionType, Phase, Snapshot
from tests.execute.fakeworld import FakeHypervisor, FakeStorage

from .harness import Harness, build, spec

HOSTS = {"h1": "fake://h1", "h2": "fake://h2"}


def world() -> tuple[dict[str, FakeHypervisor], FakeStorage]:
    storage = FakeStorage()
    storage.add_base("base")
    hvs = {n: FakeHypervisor(n, storage, cpus=2, memory_mib=2048) for n in HOSTS}
    return hvs, storage


def make(
    harnesses: list[Harness], state=None, **kw
) -> tuple[Harness, dict[str, FakeHypervisor], FakeStorage]:
    hvs, storage = world()
    h = build(hvs, storage, state, **kw)
    harnesses.append(h)
    return h, hvs, storage


FULL = spec(
    HOSTS,
    vms={"a": None, "b": None, "c": None},
    volumes={"v1": 1, "v2": 2},
    attachments={"att1": ("v1", "a"), "att2": ("v2", "c")},
)
MOVED = spec(  # FULL with v1 moved from a to b
    HOSTS,
    vms={"a": None, "b": None, "c": None},
    volumes={"v1": 1, "v2": 2},
    attachments={"att1": ("v1", "b"), "att2": ("v2", "c")},
)


def cond(snap: Snapshot, key: str, ctype: ConditionType) -> bool:
    return next(c.status for c in snap.resources[key].conditions if c.type == ctype)


def test_one_pass_converges_and_reports_ids_hosts_events(
    harnesses: list[Harness],
) -> None:
    h, hvs, storage = make(harnesses, FULL)
    result = h.engine.run_pass()
    snap = result.snapshot
    assert snap.converged, snap.resources
    # the world: first fit by pmid, 2 CPUs per host -> a, b on h1 and c on h2
    assert {n for n, d in hvs["h1"].domains.items() if d.running} == {"a", "b"}
    assert {n for n, d in hvs["h2"].domains.items() if d.running} == {"c"}
    assert hvs["h1"].domains["a"].disks == {"vol-v1": "vdb"}
    assert set(storage.images) >= {"vm-a-root", "vm-b-root", "vm-c-root", "vol-v1", "vol-v2"}
    # status
    a = snap.resources["vm/a"]
    assert a.phase is Phase.READY
    assert a.host == "h1"
    assert a.pmid == 1
    assert a.ids["tid"] == 1
    assert a.ids["imageId"] == 1
    assert a.ids["vmid"] >= 1
    assert a.observed_spec_hash == a.desired_spec_hash
    assert [e.reason for e in a.events] == ["RootCloned", "Created", "Started"]
    assert cond(snap, "vm/a", ConditionType.READY)
    assert not cond(snap, "vm/a", ConditionType.DEGRADED)
    att = snap.resources["attachment/att1"]
    assert att.phase is Phase.READY
    assert att.details["target"] == "vdb"
    assert "Attached" in [e.reason for e in att.events]
    v2 = snap.resources["volume/v2"]
    assert v2.details["attachedTo"] == "c"
    assert v2.ids["volumeid"] >= 1
    assert snap.resources["host/h1"].phase is Phase.READY
    assert snap.hosts["h1"].cpu_used_ours == 2
    assert snap.hosts["h1"].domains_ours == 2
    assert snap.resources["instancetype/small"].ids == {"tid": 1}
    assert snap.pending_actions == 0
    m = snap.metrics
    assert m.passes_total == 1
    assert m.actions_total[("define-domain", "ok")] == 3
    assert m.actions_total[("attach-volume", "ok")] == 2
    # a second pass does nothing and keeps the history
    again = h.engine.run_pass().snapshot
    assert again.converged
    assert again.generation == 2
    assert again.metrics.actions_total == m.actions_total
    assert again.resources["vm/a"].events == a.events
    ready = next(c for c in again.resources["vm/a"].conditions if c.type is ConditionType.READY)
    assert (
        ready.last_transition
        == next(c for c in a.conditions if c.type is ConditionType.READY).last_transition
    )


def test_invalid_revision_keeps_the_last_good_one(
    harnesses: list[Harness],
) -> None:
    h, hvs, _ = make(harnesses, None)
    first = h.engine.run_pass().snapshot
    assert first.generation == 1  # written although there is no desired state at all
    assert not first.converged
    assert first.last_error is not None
    assert "no valid desired state" in first.last_error

    h.source.set(FULL)
    assert h.engine.run_pass().snapshot.converged

    h.source.set(None, ("specs/vm.yaml:3: spec.instanceType: unknown type 'huge'",))
    hvs["h1"].undefine_behind_our_back("a")  # drift while the spec is broken
    snap = h.engine.run_pass().snapshot
    assert snap.source is not None
    assert snap.source.error is not None
    assert "specs/vm.yaml:3" in snap.source.error
    assert snap.source.last_applied_revision == "r1"
    assert snap.source.last_attempted_revision == "r2"
    assert "a" in hvs["h1"].domains  # the last good revision is still reconciled
    assert snap.converged


def test_a_panicking_pass_is_recorded_and_the_next_one_recovers(harnesses: list[Harness]) -> None:
    from reconciler.plan.planner import plan as real_plan

    calls = {"n": 0}

    def flaky(desired: DesiredState, observed: ObservedWorld, settings: PlanSettings) -> Plan:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ZeroDivisionError("planner bug")
        return real_plan(desired, observed, settings)

    h, _, _ = make(harnesses, FULL, planner=flaky)
    with capture_logs() as logs:
        bad = h.engine.run_pass().snapshot
    assert bad.last_error is not None
    assert "ZeroDivisionError: planner bug" in bad.last_error
    assert not bad.converged
    assert any(e["event"] == "pass.panic" for e in logs)
    good = h.engine.run_pass().snapshot
    assert good.converged
    assert good.last_error is None
    assert good.generation == 2


def test_transient_failures_back_off_and_retry_on_timer(
    harnesses: list[Harness],
) -> None:
    h, hvs, storage = make(harnesses, FULL)
    storage.inject.errors[("clone", "vm-b-root")] = [Transient("osd busy"), Transient("osd busy")]
    first = h.engine.run_pass().snapshot
    b = first.resources["vm/b"]
    assert b.phase is Phase.PROGRESSING
    assert b.last_error is not None
    assert "osd busy" in b.last_error
    assert cond(first, "vm/b", ConditionType.DEGRADED)
    assert [e.reason for e in b.events] == ["RetryScheduled"]
    assert first.resources["vm/a"].phase is Phase.READY  # independent work went on
    h.start()  # the retry timer (0.2 s, then 0.4 s) drives the rest; resync is 0.5 s
    snap = h.converged(timeout=10)
    assert "b" in hvs["h1"].domains
    assert snap.resources["vm/b"].last_error is None
    assert snap.metrics.actions_total[("clone-root", "transient")] == 2


def test_removed_volume_with_retain_is_released_and_kept(harnesses: list[Harness]) -> None:
    h, hvs, storage = make(harnesses, FULL)
    assert h.engine.run_pass().snapshot.converged
    smaller = spec(HOSTS, vms={"a": None, "b": None}, volumes={"v1": 1}, attachments={})
    h.source.set(smaller)
    snap = h.engine.run_pass().snapshot
    assert snap.converged, snap.resources
    assert "c" not in hvs["h2"].domains
    assert "vm-c-root" not in storage.images
    assert "vol-v2" in storage.images  # Retain
    assert hvs["h1"].domains["a"].disks == {}  # att1 left the spec: detached
    v2 = snap.resources["volume/v2"]
    assert v2.phase is Phase.RELEASED
    assert "Released" in [e.reason for e in v2.events]
    assert "vm/c" not in snap.resources


def test_unacknowledged_detach_is_detaching_not_moved(
    harnesses: list[Harness],
) -> None:
    h, hvs, _ = make(harnesses, FULL, detach_wait=0.3)
    assert h.engine.run_pass().snapshot.converged
    hvs["h1"].guest_acks_detach = False
    h.source.set(MOVED)
    snap = h.engine.run_pass().snapshot
    assert not snap.converged
    assert snap.resources["volume/v1"].phase is Phase.DETACHING
    assert snap.resources["attachment/att1"].phase is Phase.DETACHING
    assert hvs["h1"].domains["b"].disks == {}
    assert hvs["h1"].domains["a"].detaching == {"vol-v1"}
    hvs["h1"].complete_detach("a", "vol-v1")  # the guest finally lets go
    h.start()
    snap = h.converged()
    assert hvs["h1"].domains["b"].disks == {"vol-v1": "vdb"}
    assert snap.resources["attachment/att1"].phase is Phase.READY


def test_storage_unreachable_creates_and_deletes_nothing(harnesses: list[Harness]) -> None:
    h, hvs, storage = make(harnesses, FULL)
    assert h.engine.run_pass().snapshot.converged
    storage.reachable = False
    h.source.set(spec(HOSTS, vms={"a": None}))
    snap = h.engine.run_pass().snapshot
    assert not snap.converged
    assert set(hvs["h1"].domains) == {"a", "b"}
    assert set(hvs["h2"].domains) == {"c"}
    storage.reachable = True
    assert h.engine.run_pass().snapshot.converged


def test_one_log_event_per_action_and_per_pass_with_reconcile_id(harnesses: list[Harness]) -> None:
    h, _, _ = make(harnesses, FULL)
    with capture_logs() as logs:
        result = h.engine.run_pass()
    rid = result.reconcile_id
    actions = [e for e in logs if e["event"] == "action"]
    assert result.plan is not None
    assert len(actions) == len(result.plan.actions)
    assert all(e["reconcile_id"] == rid and e["duration_ms"] >= 0 for e in actions)
    end = next(e for e in logs if e["event"] == "pass.end")
    assert end["reconcile_id"] == rid
    assert end["converged"] is True
    assert "AQ" not in str(logs)


def test_terminal_error_fails_the_resource_until_its_spec_changes(harnesses: list[Harness]) -> None:
    h, hvs, _ = make(harnesses, FULL)
    hvs["h1"].inject.errors[("define", "h1/a")] = [Terminal("unsupported configuration")]
    snap = h.engine.run_pass().snapshot
    a = snap.resources["vm/a"]
    assert a.phase is Phase.FAILED
    assert a.last_error is not None
    assert "unsupported configuration" in a.last_error
    assert "Failed" in [e.reason for e in a.events]
    assert cond(snap, "vm/a", ConditionType.DEGRADED)
    assert snap.resources["attachment/att1"].phase is not Phase.READY  # depends on vm/a
    assert snap.resources["vm/c"].phase is Phase.READY
    calls = hvs["h1"].inject.calls[("define", "h1/a")]
    again = h.engine.run_pass().snapshot  # not retried: same action, same error
    assert again.resources["vm/a"].phase is Phase.FAILED
    assert hvs["h1"].inject.calls[("define", "h1/a")] == calls
    assert "a" not in hvs["h1"].domains
    # a spec change (another instance type) is a different action: it runs
    changed = spec(
        HOSTS,
        vms={"a": None, "b": None, "c": None},
        volumes={"v1": 1, "v2": 2},
        attachments={"att1": ("v1", "a"), "att2": ("v2", "c")},
        stopped=frozenset({"a"}),
    )
    h.source.set(changed)
    h.engine.run_pass()
    assert "a" in {n for hv in hvs.values() for n in hv.domains}


def test_a_libvirt_event_triggers_the_repair_without_waiting_for_resync(
    harnesses: list[Harness],
) -> None:
    h, hvs, _ = make(harnesses, FULL, resync=60.0)
    h.start()
    first = h.converged()
    time.sleep(0.3)  # let the events of our own changes settle
    gen = h.store.snapshot().generation
    t0 = time.monotonic()
    hvs["h1"].undefine_behind_our_back("b")  # emits a lifecycle event
    snap = h.wait(lambda s: s.generation > gen and s.converged and "b" in hvs["h1"].domains)
    assert time.monotonic() - t0 < 3.0  # far below the 60 s resync
    assert snap.metrics.events_received_total > first.metrics.events_received_total
    assert snap.metrics.drift_corrections_total >= 2  # define + start of vm/b
    assert "DriftCorrected" in [e.reason for e in snap.resources["vm/b"].events]


def test_a_spec_change_is_not_drift_but_an_out_of_band_detach_is(
    harnesses: list[Harness],
) -> None:
    h, hvs, _ = make(harnesses, FULL)
    assert h.engine.run_pass().snapshot.converged
    h.source.set(MOVED)
    snap = h.engine.run_pass().snapshot
    assert snap.converged
    assert hvs["h1"].domains["b"].disks == {"vol-v1": "vdb"}
    assert "DriftCorrected" not in [e.reason for e in snap.resources["attachment/att1"].events]
    assert snap.metrics.drift_corrections_total == 0
    with hvs["h1"].lock:  # `virsh detach-disk b vdb --live --config` behind volctl's back
        del hvs["h1"].domains["b"].disks["vol-v1"]
    snap = h.engine.run_pass().snapshot
    assert snap.converged
    assert hvs["h1"].domains["b"].disks == {"vol-v1": "vdb"}
    assert "DriftCorrected" in [e.reason for e in snap.resources["attachment/att1"].events]
    assert snap.metrics.drift_corrections_total == 1


def test_a_failure_the_planner_forgot_arms_no_retry_timer(harnesses: list[Harness]) -> None:
    h, _, storage = make(harnesses, FULL)
    storage.inject.errors[("clone", "vm-b-root")] = [Transient("osd busy")]
    assert not h.engine.run_pass().snapshot.converged
    assert h.engine.retry.next_due() is not None
    h.source.set(spec(HOSTS, vms={"a": None, "c": None}, volumes={"v1": 1, "v2": 2},
                      attachments={"att1": ("v1", "a"), "att2": ("v2", "c")}))  # fmt: skip
    time.sleep(0.3)  # the old retry is now due
    h.start()
    h.converged()
    gen = h.store.snapshot().generation
    time.sleep(1.0)
    assert h.engine.retry.next_due() is None
    # resync is 0.5 s: a couple of passes, not a hot loop on a stale retry timer
    assert h.store.snapshot().generation - gen <= 4


def test_the_pass_log_says_where_the_time_went(harnesses: list[Harness]) -> None:
    """`pass.planned` (before the first action) carries the phases so far, so "spec saved ->
    first action" can be taken apart from the log alone."""
    h, _, _ = make(harnesses, FULL)
    with capture_logs() as logs:
        h.engine.run_pass()
        h.engine.run_pass()
    planned = [e for e in logs if e["event"] == "pass.planned"]
    assert len(planned) == 1  # only the pass that had actions to run
    assert set(planned[0]["phases_ms"]) == {"fetch", "observe", "plan"}
    assert all(v >= 0 for v in planned[0]["phases_ms"].values())
