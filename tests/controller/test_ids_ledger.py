"""Ids are one-way through the whole controller (real planner, executor, status, seed REST)
on the simulated world, whose storage keeps the id ledger as RbdStorage does."""

from __future__ import annotations

from reconciler.api.seed import route
from tests.execute.fakeworld import FakeHypervisor, FakeStorage

from .harness import Harness, build, spec

HOSTS = {"h1": "fake://h1"}


def test_deleted_ids_stay_taken_and_deleted_volumes_answer_deleted(
    harnesses: list[Harness],
) -> None:
    storage = FakeStorage()
    storage.add_base("base")
    hvs = {"h1": FakeHypervisor("h1", storage, cpus=8, memory_mib=8192)}
    keep_vms = {f"a{i}": None for i in range(4)}  # enough that two deletions pass the guard
    keep_vols = {f"k{i}": 1 for i in range(4)}
    first = spec(
        HOSTS, vms={**keep_vms, "b": None}, volumes={**keep_vols, "v1": 1}, delete=frozenset({"v1"})
    )
    h = build(hvs, storage, first)
    harnesses.append(h)
    snap = h.engine.run_pass().snapshot
    assert snap.converged
    vmid_b = snap.resources["vm/b"].ids["vmid"]
    volid = snap.resources["volume/v1"].ids["volumeid"]
    assert storage.hwm == {"vm": vmid_b, "volume": volid}

    # b (the highest vmid) and v1 leave the spec: both are really deleted
    h.source.set(spec(HOSTS, vms=keep_vms, volumes=keep_vols))
    snap = h.engine.run_pass().snapshot
    assert "b" not in hvs["h1"].domains
    assert "vol-v1" not in storage.images
    assert route(snap, "/volume/query", {"volumeid": [str(volid)]}).body == {
        "volumeid": volid,
        "name": "v1",
        "size": 1,
        "status": "deleted",
    }

    # new resources get new ids
    h.source.set(spec(HOSTS, vms={**keep_vms, "c": None}, volumes={**keep_vols, "v2": 1}))
    snap = h.engine.run_pass().snapshot
    assert snap.converged
    assert snap.resources["vm/c"].ids["vmid"] == vmid_b + 1
    assert snap.resources["volume/v2"].ids["volumeid"] == volid + 1
    assert route(snap, "/volume/query", {"volumeid": [str(volid)]}).body["status"] == "deleted"
    assert route(snap, "/vm/query", {"vmid": [str(vmid_b)]}).status == 404
