"""HeaderWatches never frees a registered watch under its own lock.

librados unwatches in `rados.Watch`'s destructor, and an unwatch waits for the watch
callbacks in flight (`rados_watch_flush`); those callbacks take HeaderWatches' lock.  A
watch freed under the lock therefore deadlocks as soon as a callback is in flight, which is
what a Ceph outage produces (every watch errors at once): the R3 smoke found the storage
observation stuck in `forget()` for good after Ceph came back.  The watch here keeps the
destructor's contract (wait for the callback in flight to finish), nothing else.
"""

from __future__ import annotations

import threading
from typing import Any

from reconciler.backends.rbd_watch import HeaderWatches


class FlushingWatch:
    """Like rados.Watch: freeing it waits until the callback in flight has returned."""

    def __init__(self, on_error: Any) -> None:
        self.callback_done = threading.Event()
        self.closed = False
        self._cb = threading.Thread(target=self._fire, args=(on_error,), daemon=True)
        self._release = threading.Event()
        self._cb.start()

    def _fire(self, on_error: Any) -> None:
        self._release.wait(5)
        on_error()  # the watch broke (OSD session lost): takes HeaderWatches' lock
        self.callback_done.set()

    def close(self) -> None:
        self.closed = True
        self._release.set()
        self.callback_done.wait(5)

    def __del__(self) -> None:
        if not self.closed:
            self.close()


class FakeIoctx:
    def __init__(self) -> None:
        self.made: list[FlushingWatch] = []

    def watch(self, _oid: str, _notify: Any, error: Any) -> FlushingWatch:
        w = FlushingWatch(error)
        self.made.append(w)
        return w


def test_forget_hands_the_watches_over_instead_of_freeing_them_under_the_lock() -> None:
    hw = HeaderWatches()
    io = FakeIoctx()
    assert hw.ensure(io, "abc123")
    io.made.clear()  # the table holds the only reference now
    out: list[list[Any]] = []
    t = threading.Thread(target=lambda: out.append(hw.forget()), daemon=True)
    t.start()
    t.join(3)
    assert not t.is_alive(), "forget() deadlocked freeing a watch under its lock"
    (dead,) = out[0]
    assert hw.watched() == set()
    dead.close()  # the caller closes it off the lock; the callback in flight gets through
    assert dead.callback_done.is_set()
    assert hw.watched() == set()
