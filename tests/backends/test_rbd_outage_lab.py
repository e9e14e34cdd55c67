"""A Ceph outage leaves no librados client behind (found by reliability R3, seed 2026135347).

`RbdStorage` drops its cluster handle when a call times out, so the next call reconnects.
The dropped handle used to be only forgotten, never shut down: each one keeps a dozen
librados threads (msgr workers, timers, finisher) and its sockets, so a controller leaked one
client per outage (R3 saw 6 clients in the controller after 5 outages, +25 threads and +25
fds each).  Now the handle is shut down as soon as no call runs on it any more, which for a
call stuck on the dead cluster is when Ceph comes back and the call returns.

Real Ceph: the session lab's mon and OSD are SIGSTOPped (reliability/common/ceph_outage.py)
for a few seconds, shorter than the PG read lease, with deadlines short enough that every
outage times a call out.  The clients are counted by their `msgr-worker-0` threads.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.backends.rbd_backend import RbdStorage
from reconciler.lab.testing import LabPool
from reliability.common.ceph_outage import CephOutage, thaw_lab

pytestmark = pytest.mark.lab


def rados_clients() -> int:
    return sum(
        1
        for task in Path("/proc/self/task").iterdir()
        if (task / "comm").read_text().strip() == "msgr-worker-0"
    )


def wait_for(pred: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_ceph_outages_leak_no_librados_client(lab_pool: LabPool) -> None:
    info = lab_pool.info
    st = RbdStorage(info.ceph_conf, lab_pool.pool, info.ceph_user, timeout=3, connect_timeout=2)
    try:
        # a 3 s deadline is short on a loaded machine: the first connect may need a retry
        assert wait_for(lambda: st.observe().reachable, 60)
        base = rados_clients()
        outage = CephOutage(info.dir)
        try:
            for _ in range(3):
                outage.freeze()
                assert outage.stopped()
                seen = st.observe()  # the listing hangs: CallTimeout after 3 s, handle dropped
                assert not seen.reachable
                assert "did not finish within 3s" in (seen.reason or "")
                outage.thaw()
                assert wait_for(lambda: st.observe().reachable, 60), "Ceph did not come back"
        finally:
            outage.thaw()
            thaw_lab(info.dir)
        # the stuck calls returned after each thaw, and their handles were shut down
        assert wait_for(lambda: rados_clients() <= base, 30), (rados_clients(), base)
        assert st.retired_handles() == 0
        assert wait_for(lambda: st.observe().reachable, 60)
    finally:
        st.close()
