"""The status codec: a published snapshot decodes to an equal Snapshot (what followers serve)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.observe.types import DeletedVolume
from reconciler.status.codec import CodecError, Published, decode, encode
from tests.api.snapshots import world


def test_round_trip_is_equal() -> None:
    snap = world()
    pub = Published(snap, epoch=7, replica="r1", published=1234.5)
    back = decode(encode(pub))
    assert back == pub
    assert back.snapshot.metrics.actions_total == snap.metrics.actions_total


def test_deleted_volume_records_travel() -> None:
    """`Snapshot.deleted_volumes` holds a type that status/types.py imports only for type
    checking; a follower must still decode it (it once failed with NameError)."""
    gone = DeletedVolume(
        volumeid=9, name="old", size_bytes=1 << 30, deleted_at="2026-11-29T12:00:00Z"
    )
    snap = replace(world(), deleted_volumes={9: gone})
    back = decode(encode(Published(snap, epoch=2, replica="r1", published=1.0)))
    assert back.snapshot.deleted_volumes == {9: gone}


def test_compressed() -> None:
    snap = world()
    blob = encode(Published(snap, 1, "r", 0.0))
    assert blob[:1] == b"\x78"  # zlib header


@pytest.mark.parametrize("blob", [b"", b"not zlib", b"x\x9c\x03\x00\x00\x00\x00\x01"])
def test_garbage_is_rejected(blob: bytes) -> None:
    with pytest.raises(CodecError):
        decode(blob)
