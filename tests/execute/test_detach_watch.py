"""A requested detach is watched without holding an executor slot (issue 10, part 4).

On the in-memory world (`fakeworld`): a guest that has not acknowledged its unplug must not
delay unrelated work on the same host even with one slot per host; its dependents run in
the same pass once the DEVICE_REMOVED event arrives; a detach that never completes holds
the pass at most `detach_linger`; and a REQUESTED detach is asked again only after the
guest-friendly interval.  Assertions are on the resulting world and on when things finished.
"""

from __future__ import annotations

import random
import threading
import time

from reconciler.execute.executor import Executor, Limits
from reconciler.execute.outcome import Result
from reconciler.execute.retry import Backoff, RetryTracker
from reconciler.plan.actions import Plan

from .test_executor import IMPORT, World, move_plan, vm_actions, volume_actions


def _world(per_host: int = 1) -> World:
    w = World()
    w.executor = Executor(
        w.backends,
        limits=Limits(per_host=per_host, overall=16),
        retry=RetryTracker(Backoff((1.0, 2.0, 4.0), jitter=0.1), random.Random(7)),
        clock=lambda: w.now,
    )
    acts = [IMPORT, *vm_actions("a", "h1"), *vm_actions("b", "h1")]
    acts += volume_actions("v1", "a", "h1")
    assert w.executor.run(Plan(actions=tuple(acts))).all_ok
    return w


def test_a_pending_detach_holds_no_slot_unrelated_work_on_the_host_finishes_first() -> None:
    w = _world(per_host=1)  # one slot on h1: a detach holding it would serialize everything
    w.hvs["h1"].guest_acks_detach = False
    w.backends.detach_wait = 30.0
    w.backends.detach_linger = 30.0
    w.backends.detach_poll = 0.05
    finished: dict[str, float] = {}
    plan = Plan(actions=(*move_plan("v1", "a", "b", "h1").actions, *vm_actions("c", "h1")[1:]))
    # the root of c exists already: clone it up front, as a plan would have done before
    assert w.executor.run(Plan(actions=(IMPORT, vm_actions("c", "h1")[0]))).all_ok

    def guest_lets_go_later() -> None:
        while "c" not in w.running("h1"):
            time.sleep(0.01)
        finished["unrelated"] = time.monotonic()
        time.sleep(0.3)
        finished["detach"] = time.monotonic()
        w.hvs["h1"].complete_detach("a", "vol-v1")  # DEVICE_REMOVED

    t = threading.Thread(target=guest_lets_go_later)
    t.start()
    r = w.executor.run(plan)
    t.join(5)
    assert r.all_ok, {k: (o.result, o.message) for k, o in r.outcomes.items()}
    # c was defined and started on h1 while the detach was pending, then the move completed
    assert finished["unrelated"] < finished["detach"]
    assert w.running("h1") == {"a", "b", "c"}
    assert w.hvs["h1"].domains["a"].disks == {}
    assert w.hvs["h1"].domains["b"].disks == {"vol-v1": "vdb"}


def test_a_pass_lingers_at_most_detach_linger_for_a_move() -> None:
    w = _world()
    w.hvs["h1"].guest_acks_detach = False
    w.backends.detach_wait = 30.0
    w.backends.detach_linger = 0.4
    t0 = time.monotonic()
    r = w.executor.run(move_plan("v1", "a", "b", "h1"))
    assert 0.4 <= time.monotonic() - t0 < 2.0
    assert r.outcomes["detach-volume:attachment/v1"].result is Result.REQUESTED
    assert r.outcomes["attach-volume:attachment/v1"].result is Result.SKIPPED
    assert w.hvs["h1"].domains["b"].disks == {}  # never attached while still in a


def test_a_requested_detach_is_asked_again_only_after_the_guest_friendly_interval() -> None:
    w = _world()
    w.hvs["h1"].guest_acks_detach = False
    w.backends.detach_linger = 0.1
    w.backends.detach_reask = 10.0
    asked: list[str] = []
    real = w.hvs["h1"].detach_disk

    def counting(domain: str, rbd_image: str) -> None:
        asked.append(domain)
        real(domain, rbd_image)

    w.hvs["h1"].detach_disk = counting  # type: ignore[method-assign]
    detach = move_plan("v1", "a", "b", "h1").actions[0]
    r = w.executor.run(Plan(actions=(detach,)))
    assert r.outcomes[detach.id].retry_after is not None
    assert r.outcomes[detach.id].retry_after >= 10.0  # not the 1 s of the first backoff step
    w.now = 1000.0 + 9.5  # a pass in between (another event) does not re-ask
    again = w.executor.run(Plan(actions=(detach,)))
    assert again.outcomes[detach.id].result is Result.DEFERRED
    assert asked == ["a"]
    w.now = 1000.0 + 10.5
    w.executor.run(Plan(actions=(detach,)))
    assert asked == ["a", "a"]
