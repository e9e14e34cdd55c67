"""The status summary says when Ceph is away, and why (found by reliability R3).

With the mon and the OSD down, a steady fleet's VMs stay Ready (their domains run and need
no Ceph call), so `/api/v1/status` said only `"converged": false`: nothing in the summary
named the cause.  The snapshot now carries the pool as the pass saw it, and the summary's
`storage.reason` names Ceph.  Real planner and status computation; the codec round trip is
what an HA follower serves.
"""

from __future__ import annotations

from reconciler.api.v1 import summary_json
from reconciler.observe.types import ObservedStorage, ObservedWorld
from reconciler.status.codec import Published, decode, encode
from reconciler.status.compute import PassInput, compute
from reconciler.status.types import Phase, Snapshot
from tests.plan.builders import converge, desired, host, ohost, run, vm, world

HOSTS = [host("h1", 1)]


def _pass(w: ObservedWorld, previous: Snapshot | None = None) -> Snapshot:
    d = desired(HOSTS, [vm("web")])
    return compute(previous or Snapshot(), PassInput("t", 1000.0, 0.1, d, w, run(d, w)))


def _steady() -> ObservedWorld:
    d = desired(HOSTS, [vm("web")])
    return converge(d, world(ohost("h1")))


def test_summary_names_ceph_while_the_pool_is_unreachable() -> None:
    ok = _pass(_steady())
    assert ok.converged
    assert summary_json(ok)["storage"] == {"pool": "rbd", "reachable": True, "reason": None}

    steady = _steady()
    down = ObservedWorld(
        steady.hosts,
        ObservedStorage(False, "rbd list did not finish within 30s", "rbd"),
    )
    snap = _pass(down, ok)
    assert snap.resources["vm/web"].phase is Phase.READY  # the VM itself needs no Ceph call
    assert not snap.converged
    body = summary_json(snap)
    assert body["storage"]["reachable"] is False
    assert body["storage"]["reason"] == "Ceph pool rbd unknown: rbd list did not finish within 30s"
    assert body["lastError"] is None  # the pass itself did not fail

    back = _pass(_steady(), snap)
    assert back.converged
    assert back.storage is not None
    assert back.storage.reachable


def test_storage_status_survives_the_replica_codec() -> None:
    snap = _pass(ObservedWorld(_steady().hosts, ObservedStorage(False, "timed out", "rbd")))
    again = decode(encode(Published(snap, 3, "a", 1000.0))).snapshot
    assert again.storage == snap.storage
    assert again.storage is not None
    assert "Ceph pool rbd" in (again.storage.reason or "")


def test_a_pass_that_failed_early_keeps_the_last_storage_status() -> None:
    snap = _pass(ObservedWorld(_steady().hosts, ObservedStorage(False, "timed out", "rbd")))
    failed = compute(snap, PassInput("t2", 1001.0, 0.1, error="pass failed: boom"))
    assert failed.storage == snap.storage
