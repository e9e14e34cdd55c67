"""Executor logic on an in-memory world: order, limits, retries, terminal errors, idempotence.

The fake world enforces what the real one does (no domain without its root image, no attach
without the volume), so these tests assert the resulting world, not the calls.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace

import pytest
from structlog.testing import capture_logs

from reconciler.errors import Terminal, Transient
from reconciler.execute.executor import Executor, Limits
from reconciler.execute.handlers import Backends
from reconciler.execute.outcome import Result
from reconciler.execute.retry import Backoff, RetryTracker
from reconciler.identity import (
    BASE_SNAPSHOT,
    MANAGED_BY,
    META_KIND,
    META_MANAGED_BY,
    META_NAME,
)
from reconciler.observe.types import ObservedImage
from reconciler.payload import DiskSpec, DomainSpec, LocalFile
from reconciler.plan.actions import (
    Action,
    AttachVolume,
    CloneRoot,
    CreateVolume,
    DefineDomain,
    DeleteRoot,
    DestroyDomain,
    DetachVolume,
    ImportImage,
    Plan,
    ResizeVolume,
    StartDomain,
)

from .fakeworld import CEPH, FakeHypervisor, FakeStorage, Injector

GIB = 1 << 30


def mark(kind: str, name: str) -> tuple[tuple[str, str], ...]:
    return ((META_MANAGED_BY, MANAGED_BY), (META_KIND, kind), (META_NAME, name))


def dom(name: str, vmid: int = 1, spec_hash: str = "h1") -> DomainSpec:
    return DomainSpec(name, vmid, spec_hash, 1, 512, f"rbd/vm-{name}-root", f"/c/{name}", CEPH)


def vm_actions(name: str, host: str, spec_hash: str = "h1") -> list[Action]:
    clone = CloneRoot(
        resource=f"vm/{name}",
        image_name=f"vm-{name}-root",
        parent=f"rbd/img-base@{BASE_SNAPSHOT}",
        size_bytes=2 * GIB,
        meta=mark("root", name),
        depends_on=("import-image:image/base",),
    )
    define = DefineDomain(
        resource=f"vm/{name}",
        host=host,
        domain=dom(name, spec_hash=spec_hash),
        depends_on=(clone.id,),
    )
    start = StartDomain(
        resource=f"vm/{name}",
        host=host,
        domain=dom(name, spec_hash=spec_hash),
        depends_on=(define.id,),
    )
    return [clone, define, start]


IMPORT = ImportImage(
    resource="image/base",
    image_name="img-base",
    source=LocalFile("/img/base.raw"),
    meta=mark("image", "base"),
)


def volume_actions(vol: str, vm: str, host: str) -> list[Action]:
    create = CreateVolume(
        resource=f"volume/{vol}",
        image_name=f"vol-{vol}",
        size_bytes=GIB,
        meta=mark("volume", vol),
    )
    attach = AttachVolume(
        resource=f"attachment/{vol}",
        host=host,
        domain=dom(vm),
        disk=DiskSpec(f"rbd/vol-{vol}", "vdb", f"vol-{vol}", CEPH),
        depends_on=(create.id, f"define-domain:vm/{vm}"),
    )
    return [create, attach]


class World:
    def __init__(self, hosts: int = 2, inject: Injector | None = None) -> None:
        self.inject = inject or Injector()
        self.storage = FakeStorage(inject=self.inject)
        self.hvs = {
            f"h{i}": FakeHypervisor(f"h{i}", self.storage, inject=self.inject)
            for i in range(1, hosts + 1)
        }
        self.now = 1000.0
        self.backends = Backends(self.hvs, self.storage, detach_wait=2.0, detach_poll=0.2)
        for hv in self.hvs.values():
            hv.watch_events(self.backends.events.notify)
        self.retry = RetryTracker(Backoff((1.0, 2.0, 4.0), jitter=0.1), random.Random(7))
        self.executor = Executor(
            self.backends,
            limits=Limits(per_host=4, overall=16),
            retry=self.retry,
            clock=lambda: self.now,
        )

    def running(self, host: str) -> set[str]:
        return {n for n, d in self.hvs[host].domains.items() if d.running}


def test_creates_in_dependency_order_and_converges() -> None:
    w = World()
    actions = [IMPORT, *vm_actions("a", "h1"), *vm_actions("b", "h2")]
    actions += volume_actions("v1", "a", "h1")
    # reversed: order in the tuple must not matter, only depends_on
    report = w.executor.run(Plan(actions=tuple(reversed(actions))))
    assert report.all_ok, {k: (o.result, o.message) for k, o in report.outcomes.items()}
    assert w.running("h1") == {"a"}
    assert w.running("h2") == {"b"}
    assert w.hvs["h1"].domains["a"].disks == {"vol-v1": "vdb"}
    assert set(w.storage.images) == {"img-base", "vm-a-root", "vm-b-root", "vol-v1"}


def test_rerun_of_the_same_plan_is_idempotent() -> None:
    w = World()
    plan = Plan(actions=(IMPORT, *vm_actions("a", "h1"), *volume_actions("v1", "a", "h1")))
    assert w.executor.run(plan).all_ok
    before = (dict(w.storage.images), {n: d.disks for n, d in w.hvs["h1"].domains.items()})
    second = w.executor.run(plan)  # as after a crash right before status was written
    assert second.all_ok
    after = (dict(w.storage.images), {n: d.disks for n, d in w.hvs["h1"].domains.items()})
    assert before == after
    assert list(w.hvs["h1"].domains) == ["a"]


def test_existing_image_not_ours_is_a_terminal_conflict_and_left_alone() -> None:
    w = World()
    w.storage.images["vol-v1"] = ObservedImage("vol-v1", 5 * GIB, {"owner": "someone"})
    report = w.executor.run(Plan(actions=tuple(volume_actions("v1", "a", "h1")[:1])))
    out = report.outcomes["create-volume:volume/v1"]
    assert out.result is Result.TERMINAL
    assert "not ours" in out.message
    assert w.storage.images["vol-v1"].size_bytes == 5 * GIB
    assert w.storage.images["vol-v1"].meta == {"owner": "someone"}


def test_bounded_concurrency_per_host_and_overall() -> None:
    inject = Injector()
    inject.delay = 0.03
    w = World(hosts=6, inject=inject)
    for name in list(w.storage.images):
        del w.storage.images[name]
    actions: list[Action] = [
        CreateVolume(
            resource=f"volume/v{h}-{i}",
            host=f"h{h}",
            image_name=f"vol-v{h}-{i}",
            size_bytes=GIB,
            meta=mark("volume", f"v{h}-{i}"),
        )
        for h in range(1, 7)
        for i in range(8)
    ]
    w.executor.limits = Limits(per_host=2, overall=5)
    report = w.executor.run(Plan(actions=tuple(actions)))
    assert report.all_ok
    assert len(w.storage.images) == 48
    # the overall limit is reached (really parallel) and never exceeded; wall-clock speed is
    # measured in bench/, not asserted here, so a loaded machine cannot make this flaky
    assert inject.max_in_flight == 5


def test_per_host_limit_holds_on_each_host() -> None:
    w = World(hosts=2)
    for hv in w.hvs.values():
        hv.inject = Injector()
        hv.inject.delay = 0.03
    acts = [IMPORT]
    for i in range(10):
        acts += vm_actions(f"vm{i}", f"h{1 + i % 2}")[:2]
    w.executor.limits = Limits(per_host=3, overall=16)
    report = w.executor.run(Plan(actions=tuple(acts)))
    assert report.all_ok
    assert len(w.hvs["h1"].domains) == 5
    assert len(w.hvs["h2"].domains) == 5
    assert [hv.inject.max_in_flight for hv in w.hvs.values()] == [3, 3]


def test_transient_failure_backs_off_blocks_only_dependents_then_converges() -> None:
    w = World()
    w.inject.errors[("clone", "vm-a-root")] = [Transient("busy"), Transient("busy")]
    plan = Plan(actions=(IMPORT, *vm_actions("a", "h1"), *vm_actions("b", "h2")))

    r1 = w.executor.run(plan)
    clone = r1.outcomes["clone-root:vm/a"]
    assert clone.result is Result.TRANSIENT
    assert clone.retry_after is not None
    assert 0.9 <= clone.retry_after <= 1.1
    assert r1.outcomes["define-domain:vm/a"].result is Result.SKIPPED
    assert r1.outcomes["start-domain:vm/a"].blocked_by == "define-domain:vm/a"
    assert w.running("h2") == {"b"}  # independent work went on
    assert "a" not in w.hvs["h1"].domains

    # a pass before the delay elapsed does not call the backend again
    calls = w.inject.calls[("clone", "vm-a-root")]
    r2 = w.executor.run(plan)
    assert r2.outcomes["clone-root:vm/a"].result is Result.DEFERRED
    assert w.inject.calls[("clone", "vm-a-root")] == calls

    w.now += 1.2
    r3 = w.executor.run(plan)
    second = r3.outcomes["clone-root:vm/a"]
    assert second.result is Result.TRANSIENT
    assert second.retry_after is not None
    assert 1.8 <= second.retry_after <= 2.2

    w.now += 2.5
    r4 = w.executor.run(plan)
    assert r4.outcomes["start-domain:vm/a"].ok
    assert w.running("h1") == {"a"}
    assert w.retry.failures("clone-root:vm/a") == 0


def test_backoff_is_capped_and_jittered() -> None:
    b = Backoff((1.0, 2.0, 4.0), jitter=0.5)
    rng = random.Random(1)
    delays = [b.delay(n, rng.random) for n in range(1, 9)]
    assert all(0.5 <= d <= 1.5 for d in delays[:1])
    assert all(2.0 <= d <= 6.0 for d in delays[2:])  # capped at 4 +- 50 %
    assert len({round(d, 6) for d in delays[2:]}) > 1  # jitter varies


def test_terminal_error_stops_the_resource_until_the_action_changes() -> None:
    w = World()
    w.inject.errors[("define", "h1/a")] = [Terminal("bad xml")]
    plan = Plan(actions=(IMPORT, *vm_actions("a", "h1"), *vm_actions("b", "h1")))
    r1 = w.executor.run(plan)
    assert r1.outcomes["define-domain:vm/a"].result is Result.TERMINAL
    assert r1.outcomes["start-domain:vm/a"].result is Result.SKIPPED
    assert w.running("h1") == {"b"}

    calls = w.inject.calls[("define", "h1/a")]
    r2 = w.executor.run(plan)  # same plan: not retried, error kept
    assert r2.outcomes["define-domain:vm/a"].result is Result.TERMINAL
    assert "bad xml" in r2.outcomes["define-domain:vm/a"].message
    assert w.inject.calls[("define", "h1/a")] == calls

    changed = Plan(actions=(IMPORT, *vm_actions("a", "h1", spec_hash="h2")))
    r3 = w.executor.run(changed)  # a spec change gives it a fresh start
    assert r3.all_ok
    assert w.running("h1") >= {"a"}


def test_unknown_exception_is_transient_and_never_raises() -> None:
    w = World()
    w.inject.errors[("create", "vol-v1")] = [RuntimeError("boom")]
    r = w.executor.run(Plan(actions=tuple(volume_actions("v1", "a", "h1")[:1])))
    o = r.outcomes["create-volume:volume/v1"]
    assert o.result is Result.TRANSIENT
    assert "boom" in o.message
    assert "vol-v1" not in w.storage.images


def test_destroy_and_delete_of_what_is_gone_is_done() -> None:
    w = World()
    plan = Plan(
        actions=(
            DestroyDomain(resource="vm/x", host="h1", domain=dom("x")),
            DeleteRoot(
                resource="vm/x",
                image_name="vm-x-root",
                depends_on=("destroy-domain:vm/x",),
            ),
        )
    )
    assert w.executor.run(plan).all_ok


def test_delete_of_root_with_watcher_waits_for_destroy() -> None:
    w = World()
    assert w.executor.run(Plan(actions=(IMPORT, *vm_actions("a", "h1")))).all_ok
    delete = DeleteRoot(resource="vm/a", image_name="vm-a-root")
    r = w.executor.run(Plan(actions=(delete,)))  # a planner bug would show as transient
    assert r.outcomes[delete.id].result is Result.TRANSIENT
    destroy = DestroyDomain(resource="vm/a", host="h1", domain=dom("a"))
    w.now += 10
    ordered = Plan(
        actions=(
            destroy,
            replace(delete, depends_on=(destroy.id,)),
        )
    )
    assert w.executor.run(ordered).all_ok
    assert "vm-a-root" not in w.storage.images
    assert "a" not in w.hvs["h1"].domains


def move_plan(vol: str, src: str, dst: str, host: str) -> Plan:
    detach = DetachVolume(
        resource=f"attachment/{vol}",
        host=host,
        domain=dom(src),
        disk=DiskSpec(f"rbd/vol-{vol}", "vdb", f"vol-{vol}", CEPH),
    )
    attach = AttachVolume(
        resource=f"attachment/{vol}",
        host=host,
        domain=dom(dst),
        disk=DiskSpec(f"rbd/vol-{vol}", "vdb", f"vol-{vol}", CEPH),
        depends_on=(detach.id,),
    )
    return Plan(actions=(detach, attach))


def _two_vms_with_volume(w: World) -> None:
    acts = [IMPORT, *vm_actions("a", "h1"), *vm_actions("b", "h1")]
    acts += volume_actions("v1", "a", "h1")
    assert w.executor.run(Plan(actions=tuple(acts))).all_ok


def test_detach_waits_until_the_disk_is_gone_then_the_move_attaches() -> None:
    w = World()
    _two_vms_with_volume(w)
    w.backends.detach_poll = 20.0  # so only the DEVICE_REMOVED event can end the wait early
    w.backends.detach_wait = 30.0
    t0 = time.monotonic()
    r = w.executor.run(move_plan("v1", "a", "b", "h1"))
    assert r.all_ok
    assert time.monotonic() - t0 < 10  # woken by DEVICE_REMOVED, not by the 20 s poll
    assert w.hvs["h1"].domains["a"].disks == {}
    assert w.hvs["h1"].domains["b"].disks == {"vol-v1": "vdb"}


def test_detach_not_acknowledged_stays_requested_and_never_attaches_elsewhere() -> None:
    w = World()
    _two_vms_with_volume(w)
    w.hvs["h1"].guest_acks_detach = False
    w.backends.detach_wait = 0.5
    t0 = time.monotonic()
    r = w.executor.run(move_plan("v1", "a", "b", "h1"))
    assert 0.5 <= time.monotonic() - t0 < 1.5  # bounded wait
    det = r.outcomes["detach-volume:attachment/v1"]
    assert det.result is Result.REQUESTED
    assert det.retry_after is not None
    assert r.outcomes["attach-volume:attachment/v1"].result is Result.SKIPPED
    assert w.hvs["h1"].domains["b"].disks == {}
    assert w.hvs["h1"].domains["a"].detaching == {"vol-v1"}
    # the guest lets go later; the next pass finishes the move
    w.hvs["h1"].complete_detach("a", "vol-v1")
    w.now += 10
    assert w.executor.run(move_plan("v1", "a", "b", "h1")).all_ok
    assert w.hvs["h1"].domains["b"].disks == {"vol-v1": "vdb"}


def test_resize_grows_the_image_and_tells_the_guest() -> None:
    w = World()
    _two_vms_with_volume(w)
    resize = ResizeVolume(
        resource="volume/v1",
        host="h1",
        domain=dom("a"),
        image_name="vol-v1",
        size_bytes=3 * GIB,
    )
    assert w.executor.run(Plan(actions=(resize,))).all_ok
    assert w.storage.images["vol-v1"].size_bytes == 3 * GIB
    assert w.hvs["h1"].resized == ("a", "rbd/vol-v1", 3 * GIB)


def test_unreachable_host_fails_its_actions_only() -> None:
    w = World()
    w.hvs["h2"].reachable = False
    r = w.executor.run(Plan(actions=(IMPORT, *vm_actions("a", "h1"), *vm_actions("b", "h2"))))
    assert r.outcomes["define-domain:vm/b"].result is Result.TRANSIENT
    assert r.outcomes["start-domain:vm/a"].ok
    assert w.running("h1") == {"a"}


def test_one_log_event_per_action_with_duration_and_reconcile_id() -> None:
    w = World()
    w.inject.errors[("clone", "vm-a-root")] = [Transient("busy")]
    plan = Plan(actions=(IMPORT, *vm_actions("a", "h1")))
    with capture_logs() as logs:
        w.executor.run(plan, reconcile_id="r-1")
    events = [e for e in logs if e["event"] == "action"]
    assert sorted(e["action"] for e in events) == sorted(a.id for a in plan.actions)
    assert all(e["reconcile_id"] == "r-1" and "duration_ms" in e for e in events)
    by = {e["action"]: e for e in events}
    assert by["clone-root:vm/a"]["result"] == "transient"
    assert by["define-domain:vm/a"]["result"] == "skipped"


@pytest.mark.parametrize("limit", [1, 2])
def test_overall_limit_one_or_two_still_completes(limit: int) -> None:
    w = World()
    w.executor.limits = Limits(per_host=limit, overall=limit)
    plan = Plan(actions=(IMPORT, *vm_actions("a", "h1"), *vm_actions("b", "h2")))
    assert w.executor.run(plan).all_ok
    assert w.running("h1") == {"a"}
    assert w.running("h2") == {"b"}


def test_stopping_lets_running_calls_finish_and_starts_nothing_new() -> None:
    """SIGTERM mid-pass: the call in flight completes (no half-made resource), the actions
    that had not started end SKIPPED and are not in the world; a later pass plans them."""
    w = World()
    w.inject.delay = 0.3
    w.executor = Executor(w.backends, limits=Limits(per_host=1, overall=1), retry=w.retry)
    actions = [IMPORT, *vm_actions("a", "h1")]
    timer = threading.Timer(0.1, w.executor.stopping.set)  # while the import runs
    timer.start()
    try:
        report = w.executor.run(Plan(actions=tuple(actions)))
    finally:
        timer.cancel()
    results = {k: o.result for k, o in report.outcomes.items()}
    assert results["import-image:image/base"] is Result.OK
    assert set(w.storage.images) == {"img-base"}  # finished, nothing after it started
    for action in vm_actions("a", "h1"):
        assert results[action.id] is Result.SKIPPED
        assert report.outcomes[action.id].message == "controller stopping"
        assert not report.outcomes[action.id].ran
    assert w.hvs["h1"].domains == {}
