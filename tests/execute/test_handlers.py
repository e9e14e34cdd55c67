"""Each action kind against the in-memory world: the "ensure" edge cases, one row per case.

The executor tests cover order, limits and retries; these rows cover what one handler does
when the world is already (partly) as asked, or cannot be reached - the cases a crash or an
out-of-band change leave behind.  Every row asserts the resulting world and the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from reconciler.errors import Transient
from reconciler.execute.executor import Executor
from reconciler.execute.handlers import Backends, disk_present
from reconciler.execute.outcome import Result
from reconciler.identity import MANAGED_BY, META_KIND, META_MANAGED_BY, META_NAME
from reconciler.observe.types import (
    DomainState,
    ObservedDisk,
    ObservedDomain,
    ObservedHost,
    ObservedImage,
)
from reconciler.payload import DiskSpec, DomainSpec
from reconciler.plan.actions import (
    Action,
    AttachVolume,
    CloneRoot,
    CreateVolume,
    DeleteVolume,
    DestroyDomain,
    DetachVolume,
    Plan,
    ResizeVolume,
    SetVolumeMeta,
    StartDomain,
    StopDomain,
)

from .fakeworld import CEPH, FakeDomain, FakeHypervisor, FakeStorage

GIB = 1 << 30


def ours(kind: str, name: str, **extra: str) -> dict[str, str]:
    return {META_MANAGED_BY: MANAGED_BY, META_KIND: kind, META_NAME: name, **extra}


def spec(name: str) -> DomainSpec:
    return DomainSpec(name, 1, "h1", 1, 512, f"rbd/vm-{name}-root", f"/c/{name}", CEPH)


def disk(vol: str) -> DiskSpec:
    return DiskSpec(f"rbd/vol-{vol}", "vdb", f"vol-{vol}", CEPH)


class W:
    """One host h1 with our running VM "a" (root disk and volume v1 attached as vdb)."""

    def __init__(self) -> None:
        self.storage = FakeStorage()
        self.storage.images["vm-a-root"] = ObservedImage("vm-a-root", GIB, ours("root", "a"))
        self.storage.images["vol-v1"] = ObservedImage("vol-v1", GIB, ours("volume", "v1"))
        self.hv = FakeHypervisor("h1", self.storage)
        self.hv.domains["a"] = FakeDomain(spec("a"), running=True, disks={"vol-v1": "vdb"})
        self.backends = Backends({"h1": self.hv}, self.storage, detach_wait=0.3, detach_poll=0.1)
        self.hv.watch_events(self.backends.events.notify)

    def run(self, action: Action) -> tuple[Result, str]:
        o = Executor(self.backends).run(Plan(actions=(action,))).outcomes[action.id]
        return o.result, o.message


@dataclass(frozen=True)
class Row:
    id: str
    action: Action
    setup: Callable[[W], None]
    result: Result
    world: Callable[[W], bool]  # the state the row ends in


def _nothing(_: W) -> None:
    return None


ROWS = [
    Row(
        "set-meta merges into the image-meta and keeps the rest",
        SetVolumeMeta(
            resource="volume/v1", image_name="vol-v1", meta=(("volctl.reclaim-policy", "Delete"),)
        ),
        _nothing,
        Result.OK,
        lambda w: (
            w.storage.images["vol-v1"].meta
            == ours("volume", "v1", **{"volctl.reclaim-policy": "Delete"})
        ),
    ),
    Row(
        "resize without a guest grows the image only",
        ResizeVolume(resource="volume/v1", image_name="vol-v1", size_bytes=3 * GIB),
        _nothing,
        Result.OK,
        lambda w: (
            w.storage.images["vol-v1"].size_bytes == 3 * GIB
            and getattr(w.hv, "resized", None) is None
        ),
    ),
    Row(
        "resize told to a guest grows the image and the live disk",
        ResizeVolume(
            resource="volume/v1",
            image_name="vol-v1",
            size_bytes=2 * GIB,
            host="h1",
            domain=spec("a"),
        ),
        _nothing,
        Result.OK,
        lambda w: (
            w.storage.images["vol-v1"].size_bytes == 2 * GIB
            and w.hv.resized == ("a", "rbd/vol-v1", 2 * GIB)
        ),
    ),
    Row(
        "stop of a running domain shuts it off",
        StopDomain(resource="vm/a", host="h1", domain=spec("a")),
        _nothing,
        Result.OK,
        lambda w: not w.hv.domains["a"].running,
    ),
    Row(
        "stop of a domain that is gone is done",
        StopDomain(resource="vm/a", host="h1", domain=spec("a")),
        lambda w: w.hv.undefine_behind_our_back("a"),
        Result.OK,
        lambda w: "a" not in w.hv.domains,
    ),
    Row(
        "start of a running domain is done",
        StartDomain(resource="vm/a", host="h1", domain=spec("a")),
        _nothing,
        Result.OK,
        lambda w: w.hv.domains["a"].running,
    ),
    Row(
        "destroy of a domain that is gone is done",
        DestroyDomain(resource="vm/b", host="h1", domain=spec("b")),
        _nothing,
        Result.OK,
        lambda w: set(w.hv.domains) == {"a"},
    ),
    Row(
        "delete of a volume that is gone is done",
        DeleteVolume(resource="volume/gone", image_name="vol-gone"),
        _nothing,
        Result.OK,
        lambda w: set(w.storage.images) == {"vm-a-root", "vol-v1"},
    ),
    Row(
        "detach of a disk that is already gone is done",
        DetachVolume(resource="volume/v9", host="h1", domain=spec("a"), disk=disk("v9")),
        _nothing,
        Result.OK,
        lambda w: w.hv.domains["a"].disks == {"vol-v1": "vdb"},
    ),
    Row(
        "detach the guest ignores stays requested, the disk still live",
        DetachVolume(resource="volume/v1", host="h1", domain=spec("a"), disk=disk("v1")),
        lambda w: setattr(w.hv, "guest_acks_detach", False),
        Result.REQUESTED,
        lambda w: w.hv.domains["a"].detaching == {"vol-v1"},
    ),
    Row(
        "an action on a host without a connection is transient and changes nothing",
        AttachVolume(resource="attachment/x", host="h9", domain=spec("a"), disk=disk("v1")),
        _nothing,
        Result.TRANSIENT,
        lambda w: w.hv.domains["a"].disks == {"vol-v1": "vdb"},
    ),
    Row(
        "create over our own image of the same resource is done (a crash after create)",
        CreateVolume(
            resource="volume/v1",
            image_name="vol-v1",
            size_bytes=GIB,
            meta=tuple(ours("volume", "v1").items()),
        ),
        _nothing,
        Result.OK,
        lambda w: w.storage.images["vol-v1"].size_bytes == GIB,
    ),
    Row(
        "clone over our image of another resource is terminal and leaves it alone",
        CloneRoot(
            resource="vm/b",
            image_name="vol-v1",
            parent="rbd/img-base@volctl-base",
            size_bytes=GIB,
            meta=tuple(ours("root", "b").items()),
        ),
        lambda w: w.storage.add_base("img-base", "volctl-base"),
        Result.TERMINAL,
        lambda w: w.storage.images["vol-v1"].meta == ours("volume", "v1"),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_handler_ensures_the_world(row: Row) -> None:
    w = W()
    row.setup(w)
    result, message = w.run(row.action)
    assert result is row.result, message
    assert row.world(w)


def _host(reachable: bool, disks: tuple[ObservedDisk, ...] = ()) -> ObservedHost:
    dom = ObservedDomain("a", "u-a", DomainState.RUNNING, 1, 512, None, disks)
    return ObservedHost("h1", reachable, None if reachable else "refused", domains=(dom,))


@pytest.mark.parametrize(
    ("host", "domain", "present"),
    [
        (_host(True, (ObservedDisk("vdb", "rbd/vol-v1"),)), "a", True),
        (_host(True, (ObservedDisk("vdc", "rbd/vol-v2"),)), "a", False),
        (_host(True), "gone", False),
    ],
)
def test_disk_present_reads_the_live_domain(host: ObservedHost, domain: str, present: bool) -> None:
    assert disk_present(host, domain, "rbd/vol-v1") is present


def test_disk_present_on_an_unreachable_host_is_transient() -> None:
    with pytest.raises(Transient, match="unreachable"):
        disk_present(_host(False), "a", "rbd/vol-v1")
