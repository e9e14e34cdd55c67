"""Status of blocked resources, and the spec hash a plan drives each resource towards.

The input is real: a desired state and an observed world, planned by the real planner and
turned into a snapshot by `compute`; the rows assert the status fields users and scripts
read (phase, the Ready condition, the last error, the desired spec hash, the JSON value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld
from reconciler.payload import DiskSpec, DomainSpec, LocalFile
from reconciler.plan.actions import (
    Action,
    AttachVolume,
    CloneRoot,
    CreateVolume,
    DefineDomain,
    DeleteRoot,
    DeleteVolume,
    DestroyDomain,
    DetachVolume,
    ImportImage,
    ResizeVolume,
    SetVolumeMeta,
    StartDomain,
    StopDomain,
)
from reconciler.plan.reasons import BlockReason
from reconciler.status.compute import PassInput, blocked_phase, compute
from reconciler.status.kinds import driven_hash
from reconciler.status.types import ConditionType, Phase, ResourceStatus, Snapshot
from tests.plan.builders import (
    CEPH,
    attach,
    converge,
    desired,
    host,
    itype,
    ohost,
    run,
    vm,
    volume,
    world,
)

R = BlockReason
HOSTS = [host("h1", 1), host("h2", 2)]


def status(d: DesiredState, w: ObservedWorld, key: str) -> ResourceStatus:
    snap = compute(Snapshot(), PassInput("test", 1000.0, 0.1, d, w, run(d, w)))
    return snap.resources[key]


# --- every reason has a phase -------------------------------------------------------------

PHASES = {
    R.UNSCHEDULABLE: Phase.UNSCHEDULABLE,
    R.HOST_UNKNOWN: Phase.UNKNOWN,
    R.STORAGE_UNKNOWN: Phase.UNKNOWN,
    R.DETACHING: Phase.DETACHING,
    R.INVALID_SPEC: Phase.BLOCKED,
    R.SHRINK_REFUSED: Phase.BLOCKED,
    R.NO_FREE_TARGET: Phase.BLOCKED,
    R.NAME_CONFLICT: Phase.BLOCKED,
    R.IMAGE_CONFLICT: Phase.BLOCKED,
    R.IMAGE_MISSING: Phase.BLOCKED,
    R.ROOT_IN_USE: Phase.BLOCKED,
    R.VOLUME_IN_USE: Phase.BLOCKED,
    R.DEFERRED_WHILE_UNKNOWN: Phase.BLOCKED,
    R.DELETE_GUARD: Phase.BLOCKED,
    R.VOLUME_NOT_READY: Phase.BLOCKED,
    R.VM_NOT_READY: Phase.BLOCKED,
    R.DEPENDENCY_BLOCKED: Phase.BLOCKED,
}


def test_every_block_reason_maps_to_its_phase() -> None:
    assert set(PHASES) == set(BlockReason)
    assert {r: blocked_phase(r) for r in BlockReason} == PHASES


# --- blocked resources, end to end ----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    desired: DesiredState
    observed: ObservedWorld
    key: str
    reason: BlockReason
    phase: Phase


def _shrunk() -> tuple[DesiredState, ObservedWorld]:
    w = converge(desired(HOSTS, volumes=[volume("v", 8)]), world(ohost("h1"), ohost("h2")))
    return desired(HOSTS, volumes=[volume("v", 5)]), w


CASES = [
    Case(
        "no host has room",
        desired(HOSTS, [vm("huge", "big")], types=[itype("big", cpu=64, tid=2)]),
        world(ohost("h1"), ohost("h2")),
        "vm/huge",
        R.UNSCHEDULABLE,
        Phase.UNSCHEDULABLE,
    ),
    Case(
        "pinned to an unreachable host",
        desired(HOSTS, [vm("p", host_="h2")]),
        world(ohost("h1"), ohost("h2", reachable=False)),
        "vm/p",
        R.HOST_UNKNOWN,
        Phase.UNKNOWN,
    ),
    Case(
        "Ceph unreachable",
        desired(HOSTS, volumes=[volume("v")]),
        world(ohost("h1"), ohost("h2"), storage_ok=False),
        "volume/v",
        R.STORAGE_UNKNOWN,
        Phase.UNKNOWN,
    ),
    Case("shrink refused", *_shrunk(), "volume/v", R.SHRINK_REFUSED, Phase.BLOCKED),
    Case(
        "attachment to a blocked VM",
        desired(
            HOSTS,
            [vm("huge", "big")],
            [volume("v")],
            [attach("x", "v", "huge")],
            types=[itype("big", cpu=64, tid=2)],
        ),
        world(ohost("h1"), ohost("h2")),
        "attachment/x",
        R.VM_NOT_READY,
        Phase.BLOCKED,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_blocked_resource_shows_reason_phase_and_message(case: Case) -> None:
    blocked = {b.resource: b for b in run(case.desired, case.observed).blocked}
    assert blocked[case.key].reason is case.reason
    st = status(case.desired, case.observed, case.key)
    assert st.phase is case.phase
    ready = next(c for c in st.conditions if c.type is ConditionType.READY)
    assert (ready.status, ready.reason, ready.message) == (
        False,
        case.reason,
        blocked[case.key].message,
    )
    assert st.last_error == blocked[case.key].message
    # the REST/JSON value is the reason's string, unchanged
    assert json.loads(json.dumps({"reason": ready.reason})) == {"reason": str(case.reason)}


# --- the spec hash a plan drives a resource towards -------------------------------------------


def test_a_volume_grown_online_keeps_its_own_hash_not_its_vms() -> None:
    d = desired(HOSTS, [vm("a")], [volume("v", 5)], [attach("x", "v", "a")])
    w = converge(d, world(ohost("h1"), ohost("h2")))
    before = status(d, w, "volume/v")
    d2 = desired(HOSTS, [vm("a")], [volume("v", 8)], [attach("x", "v", "a")])
    p = run(d2, w)
    (grow,) = p.actions
    assert isinstance(grow, ResizeVolume)
    assert grow.domain is not None  # online: it names the VM's domain
    st = status(d2, w, "volume/v")
    assert st.phase is Phase.PROGRESSING
    assert st.desired_spec_hash != grow.domain.spec_hash
    assert st.desired_spec_hash == before.observed_spec_hash == st.observed_spec_hash


def test_a_vm_being_redefined_shows_the_hash_it_is_driven_to() -> None:
    d = desired(HOSTS, [vm("a")])
    w = converge(d, world(ohost("h1"), ohost("h2")))
    d2 = desired(HOSTS, [vm("a", "big")])
    define = next(a for a in run(d2, w).actions if isinstance(a, DefineDomain))
    st = status(d2, w, "vm/a")
    assert st.desired_spec_hash == define.domain.spec_hash != st.observed_spec_hash


DOM = DomainSpec("a", 1, "vm-hash", 1, 512, "rbd/vm-a-root", "/c/a", CEPH)
DISK = DiskSpec("rbd/vol-v", "vdb", "vol-1", CEPH)
META = (("volctl.spec-hash", "img-hash"), ("volctl.name", "x"))


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (DefineDomain(resource="vm/a", host="h1", domain=DOM), "vm-hash"),
        (StartDomain(resource="vm/a", host="h1", domain=DOM), "vm-hash"),
        (StopDomain(resource="vm/a", host="h1", domain=DOM), "vm-hash"),
        (DestroyDomain(resource="vm/a", host="h1", domain=DOM), "vm-hash"),
        (
            ImportImage(resource="image/x", image_name="img-x", source=LocalFile("/x"), meta=META),
            "img-hash",
        ),
        (
            CloneRoot(resource="vm/a", image_name="r", parent="p", size_bytes=1, meta=META),
            "img-hash",
        ),
        (CreateVolume(resource="volume/v", image_name="v", size_bytes=1, meta=META), "img-hash"),
        (SetVolumeMeta(resource="volume/v", image_name="v", meta=META), "img-hash"),
        (SetVolumeMeta(resource="volume/v", image_name="v", meta=(("k", "v"),)), None),
        (
            ResizeVolume(resource="volume/v", image_name="v", size_bytes=1, host="h1", domain=DOM),
            None,
        ),
        (DeleteRoot(resource="vm/a", image_name="r"), None),
        (DeleteVolume(resource="volume/v", image_name="v"), None),
        (AttachVolume(resource="attachment/x", host="h1", domain=DOM, disk=DISK), None),
        (DetachVolume(resource="volume/v", host="h1", domain=DOM, disk=DISK), None),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str | None) else str(v),
)
def test_the_hash_each_action_writes_on_its_own_resource(action: Action, expected: str) -> None:
    assert driven_hash(action) == expected
