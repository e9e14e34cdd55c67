"""Snapshots as compressed bytes, and back: how the leader's status reaches every replica.

Why a codec of our own and not pickle: the bytes live in RADOS where anyone with write access
to the pool could replace them; JSON decoded against the status types can at worst be
rejected, never run code.  The encoding is driven by the frozen dataclasses' type hints, so a
field added to `status/types.py` travels without touching this module.  Mappings are encoded
as pairs (their keys are not always strings: the metrics use (kind, result) tuples).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from reconciler.observe import types as observed
from reconciler.status.types import Snapshot

FORMAT = 1
# names the status types import only for type checking (observe.types is not loaded by `volctl
# --help`); the hints that use them are resolved against these
_HINT_NAMES: dict[str, Any] = dict(vars(observed))
T = TypeVar("T")


class CodecError(ValueError):
    """The bytes are not a status snapshot this version understands."""


@dataclass(frozen=True)
class Published:
    """A snapshot as the leader published it."""

    snapshot: Snapshot
    epoch: int  # the leader's lease epoch
    replica: str  # the leader's replica id
    published: float  # unix time of publication


def _enc(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _enc(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return [[_enc(k), _enc(v)] for k, v in value.items()]
    if isinstance(value, tuple | list):
        return [_enc(v) for v in value]
    return value


def _dec(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _dec(args[0], value)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint, localns=_HINT_NAMES)
        known = {f.name for f in dataclasses.fields(hint)}
        return hint(**{k: _dec(hints[k], v) for k, v in value.items() if k in known})
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if origin in (Mapping, dict, typing.Mapping):
        kt, vt = typing.get_args(hint)
        return {_dec(kt, k): _dec(vt, v) for k, v in value}
    if origin is tuple:
        items = typing.get_args(hint)
        if items[-1:] == (Ellipsis,):  # tuple[X, ...]
            return tuple(_dec(items[0], v) for v in value)
        return tuple(_dec(a, v) for a, v in zip(items, value, strict=True))
    if hint is float:
        return float(value)
    return value


def encode(pub: Published) -> bytes:
    doc = {
        "format": FORMAT,
        "epoch": pub.epoch,
        "replica": pub.replica,
        "published": pub.published,
        "snapshot": _enc(pub.snapshot),
    }
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)


def decode(data: bytes) -> Published:
    try:
        doc = json.loads(zlib.decompress(data))
        fmt = doc.get("format")
    except (zlib.error, ValueError, AttributeError) as exc:
        raise CodecError(f"not a volctl status snapshot: {exc}") from exc
    if fmt != FORMAT:
        raise CodecError(f"status format {fmt!r}, expected {FORMAT}")
    try:
        snap: Snapshot = _dec(Snapshot, doc["snapshot"])
        return Published(snap, int(doc["epoch"]), str(doc["replica"]), float(doc["published"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CodecError(f"not a volctl status snapshot: {exc}") from exc
