"""The action types themselves: derived ids, and payloads that cannot be half given."""

from __future__ import annotations

from dataclasses import replace
from typing import get_args

import pytest

from reconciler.execute.retry import fingerprint
from reconciler.payload import DiskSpec, DomainSpec
from reconciler.plan.actions import (
    Action,
    ActionKind,
    DeleteRoot,
    DestroyDomain,
    DetachVolume,
    ResizeVolume,
    action_id,
)

from .builders import CEPH

DOM = DomainSpec("a", 1, "h", 1, 512, "rbd/vm-a-root", "/c/a", CEPH)
DISK = DiskSpec("rbd/vol-v", "vdb", "vol-1", CEPH)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (DeleteRoot(resource="vm/a", image_name="vm-a-root"), "delete-root:vm/a"),
        (
            DestroyDomain(resource="vm/a", qualifier="h2", host="h2", domain=DOM),
            "destroy-domain:vm/a@h2",
        ),
        (
            DetachVolume(resource="volume/v", qualifier="h1/a", host="h1", domain=DOM, disk=DISK),
            "detach-volume:volume/v@h1/a",
        ),
    ],
)
def test_the_id_is_kind_resource_and_qualifier(action: DeleteRoot, expected: str) -> None:
    assert action.id == expected == action_id(action.kind, action.resource, action.qualifier)
    assert replace(action, reason="other").id == expected  # derived again, never stale


def test_each_class_knows_its_kind() -> None:
    assert DeleteRoot.kind is ActionKind.DELETE_ROOT
    assert DetachVolume(resource="volume/v", host="h1", domain=DOM, disk=DISK).kind == (
        "detach-volume"
    )


def test_a_resize_names_host_and_domain_together_or_neither() -> None:
    ResizeVolume(resource="volume/v", image_name="vol-v", size_bytes=1)
    ResizeVolume(resource="volume/v", image_name="vol-v", size_bytes=1, host="h1", domain=DOM)
    with pytest.raises(ValueError, match="together"):
        ResizeVolume(resource="volume/v", image_name="vol-v", size_bytes=1, host="h1")
    with pytest.raises(ValueError, match="together"):
        ResizeVolume(resource="volume/v", image_name="vol-v", size_bytes=1, domain=DOM)


def test_the_retry_fingerprint_ignores_display_and_order_but_not_payload() -> None:
    a = ResizeVolume(resource="volume/v", image_name="vol-v", size_bytes=1, reason="x")
    shown_otherwise = replace(a, before="1", after="2", reason="y", depends_on=("z",))
    assert fingerprint(shown_otherwise) == fingerprint(a)
    assert fingerprint(replace(a, size_bytes=2)) != fingerprint(a)
    assert fingerprint(DeleteRoot(resource="volume/v", image_name="vol-v")) != fingerprint(
        replace(a, size_bytes=1)
    )


def test_every_kind_has_one_class_and_a_place_in_every_table() -> None:
    """A new kind must be added everywhere a kind is looked up (mypy checks the matches)."""
    from reconciler.plan.draft import _KIND_ORDER
    from reconciler.plan.render import _ACTION_SYMBOL
    from reconciler.status.compute import _OK_EVENTS

    classes = get_args(Action)
    assert sorted(c.kind for c in classes) == sorted(ActionKind)
    assert set(_KIND_ORDER) == set(_ACTION_SYMBOL) == set(_OK_EVENTS) == set(ActionKind)
