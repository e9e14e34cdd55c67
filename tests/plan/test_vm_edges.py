"""An existing VM whose world or spec went wrong under it: one row per case.

Each row starts from VM a converged on h1, changes the spec or the world the way an operator
or a crash would, and asserts the plan: the actions, the blocked reason, and that the VM
keeps its placement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from reconciler.model import DesiredState
from reconciler.observe.types import ObservedWorld

from .builders import (
    converge,
    desired,
    foreign_image,
    host,
    image,
    kinds,
    ohost,
    reasons,
    run,
    vm,
    world,
)

HOSTS = [host("h1", 1), host("h2", 2)]
SPEC = desired(HOSTS, [vm("a", host_="h1")])


def _without_root(w: ObservedWorld, *add: str) -> ObservedWorld:
    images = {n: i for n, i in w.storage.images.items() if n != "vm-a-root"}
    images.update({n: foreign_image(n) for n in add})
    return replace(w, storage=replace(w.storage, images=images))


@dataclass(frozen=True)
class Row:
    id: str
    spec: DesiredState
    world: Callable[[ObservedWorld], ObservedWorld]
    actions: list[tuple[str, str]]
    reason: str | None
    start: DesiredState = SPEC  # what VM a was converged from


ROWS = [
    Row(
        "unknown instance type",
        desired(HOSTS, [vm("a", type_="nope", host_="h1")]),
        lambda w: w,
        [],
        "InvalidSpec",
    ),
    Row(
        "root disk lost: cloned again under the running domain",
        SPEC,
        _without_root,
        [("clone-root", "vm/a")],
        None,
    ),
    Row(
        "root disk lost and its name taken by a foreign image",
        SPEC,
        lambda w: _without_root(w, "vm-a-root"),
        [],
        "NameConflict",
    ),
    Row(
        "root disk lost and the image's snapshot gone",
        desired(HOSTS, [vm("a", image_="g", host_="h1")], images=[image("g", rbd="rbd/g@v1")]),
        lambda w: replace(
            _without_root(w), storage=replace(_without_root(w).storage, external_snapshots={})
        ),
        [],
        "ImageMissing",
        start=desired(
            HOSTS, [vm("a", image_="g", host_="h1")], images=[image("g", rbd="rbd/g@v1")]
        ),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_existing_vm_edge_cases(row: Row) -> None:
    base = world(ohost("h1"), ohost("h2"), external={"rbd/g@v1": True})
    w = row.world(converge(row.start, base))
    p = run(row.spec, w)
    assert kinds(p) == row.actions
    assert reasons(p) == ({"vm/a": row.reason} if row.reason else {})
    assert p.placements["vm/a"] == "h1"
