"""A host lost and found again (R2), on the loop and status logic: Unknown is published the
moment it is known, and a restored connection brings the healing pass at once.

Before: status changed only at the end of a pass, so a pass that found a host cut off but
still had work elsewhere (or waited on that host's deadlines) kept REST saying the host was
fine (R2 smoke, seed 1632312778: Unknown 18.2 s after the cut), and nothing ran after the
heal until the resync timer (converged 12.0 s after the heal, resync 10 s)."""

from __future__ import annotations

import time

from reconciler.backends.protocols import EventKind
from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld
from reconciler.plan.actions import Plan
from reconciler.plan.planner import plan as real_plan
from reconciler.plan.settings import PlanSettings
from reconciler.status.types import Phase, Snapshot
from reconciler.status.unknown import hosts_unknown
from tests.execute.fakeworld import FakeHypervisor, FakeStorage

from .harness import Harness, build, spec

HOSTS = {"h1": "fake://h1", "h2": "fake://h2"}
STATE = spec(HOSTS, vms={"a": "h1", "b": "h2"})
MORE = spec(HOSTS, vms={"a": "h1", "b": "h2", "c": "h1"})


def make(harnesses: list[Harness], **kw: object) -> tuple[Harness, dict[str, FakeHypervisor]]:
    storage = FakeStorage()
    storage.add_base("base")
    hvs = {n: FakeHypervisor(n, storage, cpus=4, memory_mib=4096) for n in HOSTS}
    h = build(hvs, storage, STATE, **kw)  # type: ignore[arg-type]
    harnesses.append(h)
    return h, hvs


def test_a_pass_publishes_unknown_before_it_plans_and_acts(harnesses: list[Harness]) -> None:
    seen: list[Snapshot] = []
    harness: list[Harness] = []

    def planner(d: DesiredState, o: ObservedWorld, s: PlanSettings) -> Plan:
        seen.append(harness[0].store.snapshot())  # what REST says while the pass goes on
        return real_plan(d, o, s)

    h, hvs = make(harnesses, planner=planner)
    harness.append(h)
    first = h.engine.run_pass().snapshot
    assert first.converged
    assert first.hosts["h2"].reachable
    hvs["h2"].reachable = False
    h.source.set(MORE)  # work left on h1: this pass goes on after finding h2 gone
    seen.clear()
    done = h.engine.run_pass().snapshot
    during = seen[0]
    assert during.generation == first.generation  # not a pass: the last one, amended
    assert not during.hosts["h2"].reachable
    assert during.hosts["h2"].reason == "connection refused"
    assert during.resources["vm/b"].phase is Phase.UNKNOWN
    assert during.resources["host/h2"].phase is Phase.UNKNOWN
    assert during.resources["vm/a"].phase is Phase.READY  # h1 untouched
    assert not during.converged
    # the pass's own snapshot agrees, and nothing of h2's was recreated elsewhere
    assert done.resources["vm/b"].phase is Phase.UNKNOWN
    assert "b" in hvs["h2"].domains
    assert "b" not in hvs["h1"].domains
    assert "c" in hvs["h1"].domains


def test_a_lost_connection_is_unknown_at_once_and_a_restored_one_heals_without_resync(
    harnesses: list[Harness],
) -> None:
    h, hvs = make(harnesses, resync=60.0)
    h.start()
    before = h.wait(lambda s: s.converged and "b" in hvs["h2"].domains)
    time.sleep(0.3)  # the events of our own changes settle
    gen = h.store.snapshot().generation
    hvs["h2"].reachable = False
    hvs["h2"]._emit(EventKind.CONNECTION_LOST, "")
    now = h.store.snapshot()  # synchronously, before any pass ran
    assert not now.hosts["h2"].reachable
    assert now.resources["vm/b"].phase is Phase.UNKNOWN
    assert now.metrics.events_received_total > before.metrics.events_received_total
    lost = h.wait(lambda s: s.generation > gen)  # the kicked pass agrees
    assert not lost.hosts["h2"].reachable
    assert lost.resources["vm/b"].phase is Phase.UNKNOWN
    time.sleep(0.3)
    gen = h.store.snapshot().generation
    hvs["h2"].reachable = True
    t0 = time.monotonic()
    hvs["h2"]._emit(EventKind.CONNECTION_RESTORED, "")
    back = h.wait(lambda s: s.generation > gen and s.converged)
    assert time.monotonic() - t0 < 3.0  # far below the 60 s resync
    assert back.hosts["h2"].reachable
    assert back.resources["vm/b"].phase is Phase.READY
    assert list(hvs["h2"].domains) == ["b"]  # the same domain, never recreated


def test_hosts_unknown_only_ever_turns_things_unknown() -> None:
    storage = FakeStorage()
    storage.add_base("base")
    hvs = {n: FakeHypervisor(n, storage) for n in HOSTS}
    h = build(hvs, storage, STATE)
    snap = h.engine.run_pass().snapshot
    out = hosts_unknown(snap, {"h2": "gone", "nope": "not a host of this snapshot"})
    assert set(out.hosts) == set(snap.hosts)
    assert out.resources["vm/a"] == snap.resources["vm/a"]
    assert out.resources["vm/b"].phase is Phase.UNKNOWN
    assert out.generation == snap.generation
    assert out.metrics == snap.metrics
    assert hosts_unknown(out, {"h2": "gone"}) is out  # already said: nothing republished
