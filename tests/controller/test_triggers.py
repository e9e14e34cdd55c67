"""Triggers and the status store: wake-ups coalesce, timers re-arm, readers never block."""

from __future__ import annotations

import random
import threading
import time

from reconciler.controller.triggers import EVENT, RESYNC, RETRY, SOURCE, Resync, Triggers
from reconciler.status.store import StatusStore
from reconciler.status.types import Snapshot


def test_kick_wakes_at_once_and_drains_every_due_reason() -> None:
    t = Triggers()
    t.kick(SOURCE)
    t.kick_after(RETRY, 0.0)
    t0 = time.monotonic()
    assert t.wait(timeout=5) == {SOURCE, RETRY}
    assert time.monotonic() - t0 < 0.1
    assert t.wait(timeout=0.05) == set()  # nothing left


def test_bursts_of_events_coalesce_into_one_wake_up() -> None:
    t = Triggers()
    t0 = time.monotonic()
    t.kick_after(EVENT, 0.2)
    time.sleep(0.1)
    t.kick_after(EVENT, 0.2)  # does not push the first one back
    assert t.wait(timeout=5) == {EVENT}
    assert 0.18 <= time.monotonic() - t0 < 0.28
    assert t.wait(timeout=0.3) == set()


def test_replace_moves_a_timer_later_and_cancel_removes_it() -> None:
    t = Triggers()
    t.replace(RESYNC, 0.05)
    t.replace(RESYNC, 0.3)
    t.replace(RETRY, 0.05)
    t.cancel(RETRY)
    t0 = time.monotonic()
    assert t.wait(timeout=5) == {RESYNC}
    assert time.monotonic() - t0 >= 0.28


def test_stop_unblocks_a_waiting_loop() -> None:
    t = Triggers()
    got: list[set[str]] = []
    th = threading.Thread(target=lambda: got.append(t.wait()))
    th.start()
    time.sleep(0.05)
    t.stop()
    th.join(timeout=2)
    assert not th.is_alive()
    assert got == [set()]


def test_resync_is_jittered_within_bounds() -> None:
    r = Resync(30.0, 0.1)
    rng = random.Random(11)
    delays = [r.next_delay(rng.random) for _ in range(200)]
    assert all(27.0 <= d <= 33.0 for d in delays)
    assert max(delays) - min(delays) > 3.0  # really spread, not constant


def test_store_counts_events_from_many_threads_without_losing_any() -> None:
    store = StatusStore()
    threads = [
        threading.Thread(target=lambda: [store.count_events() for _ in range(500)])
        for _ in range(8)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert store.snapshot().metrics.events_received_total == 4000


def test_store_wait_for_sees_the_published_snapshot() -> None:
    store = StatusStore()
    first = store.snapshot()
    threading.Timer(0.05, lambda: store.publish(Snapshot(generation=7, converged=True))).start()
    snap = store.wait_for(lambda s: s.converged, timeout=5)
    assert snap is not None
    assert snap.generation == 7
    assert first.generation == 0  # readers keep the snapshot they got
    assert store.wait_for(lambda s: s.generation == 99, timeout=0.05) is None
