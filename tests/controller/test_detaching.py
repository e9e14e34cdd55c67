"""A detach the guest does not acknowledge: asked again with backoff, never a hot loop, and
the world is never reported converged while a volume is still Detaching.

The fake world's guest ignores unplug requests while `guest_acks_detach` is False (a guest
still booting); the disk then stays in the live domain but leaves the persistent config,
exactly what libvirt shows.  The loop runs with the production backoff shape (1 s, 2 s, 4 s
... jittered) so the number of passes over a time window is what a user would see; the
windows are simulated (`FakeClock`, `Harness.run_due`), so they cost no wall time and the
count does not depend on how loaded the machine is.
"""

from __future__ import annotations

import itertools
import random

from reconciler.controller.triggers import START
from reconciler.errors import Transient
from reconciler.execute.retry import Backoff, RetryTracker
from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import ActionKind, Plan
from reconciler.plan.planner import plan
from reconciler.plan.settings import PlanSettings
from reconciler.status.types import Phase
from tests.execute.fakeworld import FakeHypervisor, FakeStorage

from .harness import FakeClock, Harness, build, spec

HOSTS = {"h1": "fake://h1"}
VMS = {"a": None, "b": None}
ONE = spec(HOSTS, vms=VMS, volumes={"v1": 1}, attachments={"att1": ("v1", "a")})
UNATTACHED = spec(HOSTS, vms=VMS, volumes={"v1": 1})
MOVED = spec(HOSTS, vms=VMS, volumes={"v1": 1}, attachments={"att1": ("v1", "b")})


def make(
    harnesses: list[Harness], clock: FakeClock | None = None, reask: float = 10.0
) -> tuple[Harness, FakeHypervisor]:
    storage = FakeStorage()
    storage.add_base("base")
    hv = FakeHypervisor("h1", storage, cpus=4, memory_mib=4096)
    h = build(
        {"h1": hv}, storage, ONE, detach_wait=0.2, detach_reask=reask, resync=30.0, clock=clock
    )
    # production backoff shape, deterministic jitter
    h.engine.retry = RetryTracker(Backoff(), random.Random(7))
    harnesses.append(h)
    return h, hv


def detach_calls(hv: FakeHypervisor) -> int:
    return int(hv.inject.calls[("detach_disk", "h1/a")])


def test_a_lost_detach_request_is_sent_again_and_completes(harnesses: list[Harness]) -> None:
    h, hv = make(harnesses, reask=0.5)
    assert h.engine.run_pass().snapshot.converged
    hv.guest_acks_detach = False  # the guest is still booting: the unplug request is lost
    h.source.set(UNATTACHED)
    snap = h.engine.run_pass().snapshot
    assert hv.domains["a"].detaching == {"vol-v1"}
    assert snap.resources["volume/v1"].phase is Phase.DETACHING
    assert not snap.converged
    hv.guest_acks_detach = True  # the guest is up now and would honour a new request
    h.start()
    snap = h.converged(timeout=10)
    assert hv.domains["a"].disks == {}
    assert "vol-v1" not in hv.storage.watchers or not hv.storage.watchers["vol-v1"]
    assert snap.resources["volume/v1"].phase is Phase.READY
    assert detach_calls(hv) == 2


def test_a_stuck_detach_is_asked_again_only_after_a_guest_friendly_interval(
    harnesses: list[Harness],
) -> None:
    """Re-asking too early cancels a PCIe unplug in progress (lab notes): a requested detach
    is asked again only after `detach_reask` (10 s), then with the backoff beyond it."""
    clock = FakeClock()
    h, hv = make(harnesses, clock)
    assert h.engine.run_pass().snapshot.converged
    hv.guest_acks_detach = False  # never acknowledged
    h.source.set(MOVED)
    h.controller.triggers.kick(START)
    t0 = clock()
    started = [t - t0 for t in h.run_due(clock, until=t0 + 45.0)]
    asks = detach_calls(hv)
    # the source change, then a re-ask every ~10 s, growing with the backoff (16 s after the
    # fifth): never a re-ask within 10 s, never a hot loop
    assert 4 <= asks <= 5, (asks, started)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert all(g >= 10.0 for g in gaps), started
    snap = h.store.snapshot()
    assert not snap.converged
    assert snap.resources["volume/v1"].phase is Phase.DETACHING
    assert snap.resources["attachment/att1"].phase is Phase.DETACHING
    assert hv.domains["b"].disks == {}  # never attached elsewhere while a guest holds it
    due = h.engine.retry.next_due(clock())
    assert due is not None
    assert due > clock()


def test_a_retry_waiting_behind_a_failing_detach_arms_no_hot_timer(
    harnesses: list[Harness],
) -> None:
    """An attach that failed once, then waits behind a detach in backoff: its own past due
    time must not fire the retry timer after every pass."""
    clock = FakeClock()
    h, hv = make(harnesses, clock)
    h.source.set(UNATTACHED)
    assert h.engine.run_pass().snapshot.converged
    hv.inject.errors[("attach_disk", "h1/b")] = [OSError("qemu monitor busy")]
    h.source.set(MOVED)
    assert not h.engine.run_pass().snapshot.converged  # attach failed: entry due in ~1 s
    with hv.lock:  # someone attaches v1 to a behind volctl's back
        hv.domains["a"].disks["vol-v1"] = "vdb"
    hv.inject.errors[("detach_disk", "h1/a")] = [Transient("libvirt busy")] * 20
    clock.now += 1.3  # the attach's retry is due now; it waits for the detach
    h.controller.triggers.kick(START)
    started = h.run_due(clock, until=clock() + 4.0)
    # a hot timer would run pass after pass at one instant, up to run_due's cap of 50
    assert len(started) <= 6, started
    assert len(set(started)) == len(started), started
    assert 1 <= detach_calls(hv) <= 4, detach_calls(hv)
    assert hv.domains["b"].disks == {}
    assert not h.store.snapshot().converged


def test_converged_is_false_while_anything_is_detaching(harnesses: list[Harness]) -> None:
    """Even a planner that has nothing to do cannot make a Detaching volume converged."""

    def no_detach(d: DesiredState, w: ObservedWorld, s: PlanSettings) -> Plan:
        p = plan(d, w, s)
        keep = tuple(a for a in p.actions if a.kind != ActionKind.DETACH_VOLUME)
        return Plan(actions=keep, blocked=p.blocked, placements=p.placements, ids=p.ids)

    h, hv = make(harnesses)
    assert h.engine.run_pass().snapshot.converged
    with hv.lock:
        hv.domains["a"].detaching.add("vol-v1")  # live only: a detach is in flight
    h.engine.planner = no_detach
    h.source.set(UNATTACHED)
    result = h.engine.run_pass()
    assert result.remaining is not None
    assert result.remaining.empty
    assert result.snapshot.resources["volume/v1"].phase is Phase.DETACHING
    assert not result.snapshot.converged
